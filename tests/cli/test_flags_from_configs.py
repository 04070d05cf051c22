"""Every command's flags come from its config, and every numeric flag refuses NaN, inf and out-of-range values
with exit 2 and the flag's name, before any work starts (issue 23 "one validation layer", issue 24 part 4)."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from rexnet._config import Config, flag_name
from rexnet.cli import main
from rexnet.cli.rank import PaperViewOptions, ProfileOptions, StudyOptions, VerifyOptions
from rexnet.rank import Protocol
from rexnet.search import SearchConfig
from rexnet.train import TrainConfig


def _numeric_fields(cls: type[Config]) -> list[tuple[type[Config], dataclasses.Field]]:
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kinds = set(typing.get_args(hints[f.name]) or (hints[f.name],)) - {type(None)}
        if kinds and kinds <= {int, float}:
            out.append((cls, f))
        elif len(kinds) == 1 and isinstance(next(iter(kinds)), type) and issubclass(next(iter(kinds)), Config):
            out += _numeric_fields(next(iter(kinds)))
    return out


# (command, the rest of a valid command line, config classes whose fields are its flags); every output goes to
# {tmp}/o, so a value wrongly accepted writes there (and the test sees it) instead of starting work elsewhere
COMMANDS = [
    (["train"], ["-o", "{tmp}"], [TrainConfig]),
    (["finetune"], ["--pretrained", "{tmp}/x.pt", "-o", "{tmp}"], [TrainConfig]),
    (["search", "run"], ["--out", "{tmp}"], [SearchConfig]),
    (["rank", "study"], ["--out", "{tmp}"], [StudyOptions, Protocol]),
    (["rank", "paper-view"], ["--out", "{tmp}"], [PaperViewOptions]),
    (["rank", "profile"], ["rexnet_060", "--out", "{tmp}"], [ProfileOptions]),
    (["rank", "verify"], ["--out", "{tmp}"], [VerifyOptions]),
]
CASES = [
    pytest.param(command + rest, cls, f, value, id=f"{' '.join(command)}-{flag_name(cls, f.name)}-{value}")
    for command, rest, classes in COMMANDS
    for c in classes
    for cls, f in _numeric_fields(c)
    for value in ("nan", "inf", "-1e30", "1e30")
    # a budget or a memory allowance has no upper bound: a huge one is refused by the memory guard (tests/search)
    if not (value == "1e30" and f.name in ("budget_macs", "budget_params", "max_memory"))
]


@pytest.mark.parametrize("argv, cls, f, value", CASES)
def test_every_numeric_flag_refuses_bad_numbers(tmp_path, capsys, argv, cls, f, value):
    flag = flag_name(cls, f.name)
    argv = [a.replace("{tmp}", str(tmp_path / "o")) for a in argv] + [f"{flag}={value}"]  # = lets "-1e30" through
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert flag in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_the_commands_have_the_generated_flags(capsys):
    for command, _, classes in COMMANDS:
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        text = capsys.readouterr().out
        for cls in classes:
            for f in dataclasses.fields(cls):
                if not f.metadata.get("positional") and not isinstance(getattr(cls(), f.name, None), Config):
                    assert flag_name(cls, f.name) in text, (command, f.name)
