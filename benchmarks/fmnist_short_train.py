"""A short Fashion-MNIST training run for the issue-11 precision-accuracy table (not the paper recipe).

    python benchmarks/fmnist_short_train.py fashion-mnist 32 2 OUT.pt 15000 rexnet_100 0.05

Arguments: data, image size, epochs, output checkpoint, training images (fixed subset), model, peak lr.
SGD + Nesterov, one-cycle lr, label smoothing 0.1, batch 64; images under the *evaluation* transform plus
a horizontal flip (the paper's RandomResizedCrop/RandAugment recipe does not converge in 2 short epochs
on 28-px images). Writes a ``rexnet train``-format checkpoint that ``rexnet eval``/``export`` read.
Used because no Fashion-MNIST checkpoint was available in time; run it at nice 19.
"""

from __future__ import annotations

import sys

import torch
from torchvision.transforms import v2

import rexnet
from rexnet.data import build_datasets
from rexnet.deploy.calib import _base, _with_transform
from rexnet.train.checkpoint import save_checkpoint


def main(data: str, size: int, epochs: int, out: str, limit: int | None, model: str, lr: float) -> None:
    torch.manual_seed(0)
    b = build_datasets(data, size, train=True, model=model, train_limit=limit)
    m = rexnet.create_model(model, num_classes=b.num_classes)
    train_ds = _with_transform(b.train, v2.Compose([_base(b.val).transform, v2.RandomHorizontalFlip()]))
    opt = torch.optim.SGD(m.parameters(), lr=lr, momentum=0.9, weight_decay=5e-5, nesterov=True)
    dl = torch.utils.data.DataLoader(train_ds, batch_size=64, shuffle=True, num_workers=0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * len(dl))
    for e in range(epochs):
        m.train()
        for i, (x, y) in enumerate(dl):
            loss = torch.nn.functional.cross_entropy(m(x), y, label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if i % 100 == 0:
                print(e, i, float(loss.detach()), flush=True)
        m.eval()
        with torch.no_grad():
            val = torch.utils.data.DataLoader(b.val, batch_size=256)
            acc = sum(int((m(x).argmax(1) == y).sum()) for x, y in val) / len(b.val)
        print("epoch", e, "val", acc, flush=True)
    save_checkpoint(
        dict(
            model=m.state_dict(),
            optimizer={},
            scheduler={},
            epoch=epochs,
            step_in_epoch=0,
            history=[],
            config={"image_size": size, "data": data, "note": "benchmarks/fmnist_short_train.py"},
            model_name=model,
            num_classes=b.num_classes,
            class_names=b.class_names,
        ),
        out,
    )
    print("saved", out)


if __name__ == "__main__":
    a = sys.argv[1:]
    main(
        a[0],
        int(a[1]),
        int(a[2]),
        a[3],
        int(a[4]) if len(a) > 4 else None,
        a[5] if len(a) > 5 else "rexnet_100",
        float(a[6]) if len(a) > 6 else 0.05,
    )
