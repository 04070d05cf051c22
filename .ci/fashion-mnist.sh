#!/usr/bin/env bash
# Install Fashion-MNIST (Debian package dataset-fashion-mnist: the four IDX files under
# /usr/share/datasets/fashion-mnist) so the tests that read the real files run; without it they
# skip and the tests on a generated IDX fixture still run. Idempotent; never fails the build.
set -uo pipefail
DIR=/usr/share/datasets/fashion-mnist
if [ -f "$DIR/train-images-idx3-ubyte.gz" ]; then
  echo "fashion-mnist: present in $DIR"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "fashion-mnist: not installed and no root/apt-get here; the real-data tests will skip" >&2
  exit 0
fi
{ apt-get install -y -q dataset-fashion-mnist || { apt-get update -q && apt-get install -y -q dataset-fashion-mnist; }; } \
  >/tmp/rexnet-fashion-apt.log 2>&1 \
  && echo "fashion-mnist: installed in $DIR" \
  || echo "fashion-mnist: apt-get failed (see /tmp/rexnet-fashion-apt.log); the real-data tests will skip" >&2
exit 0
