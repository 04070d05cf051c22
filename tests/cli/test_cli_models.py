"""``rexnet models`` / ``info`` / error exit codes."""

import json

from rexnet.cli import main


def test_models_json_has_every_variant(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["model"]: r for r in rows}
    assert by_name["rexnet_100"]["params (M)"] == 4.797 and by_name["rexnet_100"]["GMACs"] == 0.398
    assert by_name["rexnet_100"]["top-1"] == 77.9 and len(rows) == 21


def test_models_pattern_and_info(capsys):
    assert main(["models", "rexnet_lite_*"]) == 0
    out = capsys.readouterr().out
    assert "rexnet_lite_150" in out and "rexnetr_100" not in out
    assert main(["info", "rexnet_100"]) == 0
    out = capsys.readouterr().out
    assert "4,796,873" in out and "block15" in out and "1044" in out


def test_unknown_name_exit_code_and_message(capsys):
    assert main(["info", "rexnet_999"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'rexnet_999'" in err and "rexnet_lite_100" in err


def test_info_takes_timm_style_name(capsys):
    assert main(["info", "timm/rexnet_100.nav_in1k"]) == 0
    assert "4,796,873" in capsys.readouterr().out
    assert main(["info", "rexnet_100.in22k"]) == 2
    assert "unknown weight tag 'in22k'" in capsys.readouterr().err
