#!/bin/sh
# Install the Debian packages the build and the test suites need.
# As root: apt-get installs whatever is missing. Otherwise: print the command.
set -eu
PKGS="build-essential cmake pkg-config git
libraft-dev libuv1-dev libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler
protobuf-compiler liblmdb-dev libssl-dev libzstd-dev libarchive-dev libcmocka-dev
libsystemd-dev python3 python3-pytest python3-grpcio python3-grpc-tools
python3-protobuf prometheus jq curl"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages:$missing" >&2
    echo "run as root: apt-get update && apt-get install -y$missing" >&2
    exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
