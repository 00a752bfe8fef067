#!/bin/sh
# with-devdeps.sh CMD... — on the GPU machine (CUDA, no package access): unpack the Debian
# libraries that ../shared/gpu-machine/devdeps.sh fetched into .devdeps/, point the build at
# them, put nvcc on the PATH, and run CMD (e.g. make gpu-test).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
P=$top/.devdeps/root
L=$P/usr/lib/x86_64-linux-gnu
if [ ! -d "$L" ]; then
  [ -d "$top/.devdeps/debs" ] || { echo "with-devdeps.sh: no .devdeps/debs (run devdeps.sh)" >&2; exit 2; }
  mkdir -p "$P"
  for f in "$top"/.devdeps/debs/*.deb; do dpkg -x "$f" "$P"; done
fi
export CPPFLAGS="-I$P/usr/include" LDFLAGS="-L$L -Wl,--disable-new-dtags,-rpath,$L"
export PATH="$PATH:/usr/local/cuda/bin"
exec "$@"
