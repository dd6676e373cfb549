#!/usr/bin/env bash
# Fill .gpu/ with what bench/device_check.sh needs on a bare GPU machine (no network,
# no Postgres, no Redis, no Django; Python 3.12 with torch, numpy, scikit-learn... already there).
#
#   bench/device_carry.sh            # run on a Debian 12 (bookworm) x86-64 machine with apt and .venv
#
#   .gpu/whl/  wheels for CPython 3.12 x86-64, the versions .venv has, no dependencies pulled in:
#              Django and what bench/device_settings.py imports (Channels + channels_redis, Celery,
#              redis-py, psycopg2-binary, DRF...); nothing the GPU machine already has (numpy, torch,
#              PyYAML, msgpack, click, requests...): a second numpy would shadow the one torch needs.
#   .gpu/deb/  Debian 12 packages, unpacked there with dpkg -x into /tmp, never into /:
#              postgresql-15, redis-tools (redis-server is in it) and every shared library their
#              binaries link to except glibc's (ldd, below), plus tzdata (Postgres reads
#              /usr/share/zoneinfo; a bare image may have none).
#
# .gpu/ is kept out of git by .gitignore; the device tool takes it with carry=[".gpu"].
# Total size: about 55 MB (the device tool carries at most 64 MiB with the working tree).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST=${1:-$ROOT/.gpu}
VENV_PY=${VENV_PY:-$ROOT/.venv/bin/python}

# The packages bench/device_settings.py needs beyond what the GPU machine has; versions from .venv.
WHEELS=(Django asgiref sqlparse psycopg2-binary dj-database-url channels channels_redis redis whitenoise
        celery kombu billiard vine amqp click-didyoumean click-repl click-plugins prompt_toolkit wcwidth
        tzlocal djangorestframework drf-spectacular uritemplate inflection)
# Not in .venv (Linux has /usr/share/zoneinfo): Python's zoneinfo falls back to it where the
# machine has no time zone files.
EXTRA_WHEELS=(tzdata==2026.6)
DEBS=(postgresql-15 redis-tools tzdata
      libicu72 libldap-2.5-0 libsasl2-2 libpq5 libxml2 libssl3 libgssapi-krb5-2 libkrb5-3 libk5crypto3
      libkrb5support0 libkeyutils1 libcom-err2 libgnutls30 libp11-kit0 libidn2-0 libunistring2 libtasn1-6
      libnettle8 libhogweed6 libgmp10 libffi8 libjemalloc2 liblzf1 libatomic1 libsystemd0 libcap2
      libgcrypt20 libgpg-error0 liblz4-1 liblzma5 libzstd1 libaudit1 libcap-ng0 libpam0g zlib1g
      libstdc++6 libgcc-s1)

mkdir -p "$DEST/whl" "$DEST/deb"
pins=()
for name in "${WHEELS[@]}"; do
    pins+=("$name==$("$VENV_PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d "$DEST/whl" "${pins[@]}" "${EXTRA_WHEELS[@]}"
(cd "$DEST/deb" && apt-get download "${DEBS[@]}")
for deb in "$DEST"/deb/*_*.deb; do  # apt names them package_epoch%3aversion_arch.deb: plain names travel better
    mv -f "$deb" "$DEST/deb/$(dpkg-deb -f "$deb" Package | tr + p).deb"
done

# Every library the binaries link to must be in the packages above (glibc's own excepted).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for deb in "$DEST"/deb/*.deb; do dpkg -x "$deb" "$tmp"; done
missing=$(LD_LIBRARY_PATH="$tmp/usr/lib/x86_64-linux-gnu:$tmp/lib/x86_64-linux-gnu" \
    ldd "$tmp"/usr/lib/postgresql/15/bin/{postgres,initdb,pg_ctl} "$tmp"/usr/bin/redis-check-rdb \
        "$tmp"/usr/lib/postgresql/15/lib/{plpgsql,dict_snowball}.so |
    awk '/=>/ && $3 !~ /^\/(tmp|proc)/ {print $1}' | sort -u |
    grep -vE '^(libc|libm|libresolv|libpthread|libdl|librt|ld-linux-x86-64)\.so' || true)
if [ -n "$missing" ]; then
    echo "not carried (add their packages to DEBS): $missing" >&2
    exit 1
fi
{
    echo "Made by bench/device_carry.sh on $(date -u +%FT%TZ)"
    (cd "$DEST" && ls -1 whl)
    for deb in "$DEST"/deb/*.deb; do dpkg-deb -W --showformat='${Package} ${Version}\n' "$deb"; done
} > "$DEST/MANIFEST.txt"
du -sh "$DEST"
