#!/usr/bin/env bash
# Makes sure the system programs the test suite starts itself are installed.
#   required: redis-server
#   optional: Debian's C++ TANGO DataBaseds and TangoTest (packages tango-db, tango-test) and
#             the mysql client, for the C++ tier of tests/integration/tango (those tests skip,
#             saying why, without them; they also need a MariaDB they can reach, see
#             tests/support/tango_db.py).
# Installs with apt-get when running as root on Debian/Ubuntu; otherwise says what to do.
# A failure to install the optional packages is reported and does not fail the run.
set -euo pipefail

can_apt() { [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; }
updated=0
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ "$updated" -eq 0 ]; then apt-get update -qq >/dev/null; updated=1; fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  if can_apt; then
    echo "system-deps: installing ${missing[*]} with apt-get"
    apt_install "${missing[@]}"
    # the tests start their own servers on free ports; the package's service is not needed
  else
    echo "system-deps: missing ${missing[*]}." >&2
    echo "  Debian/Ubuntu: sudo apt-get install -y ${missing[*]}" >&2
    echo "  other systems: install Redis 6.2 or newer so that 'redis-server' is on PATH" >&2
    exit 1
  fi
fi

optional=()
[ -x /usr/lib/tango/DataBaseds ] || optional+=(tango-db)
[ -x /usr/lib/tango/TangoTest ] || optional+=(tango-test)
command -v mysql >/dev/null 2>&1 || optional+=(mariadb-client)
if [ ${#optional[@]} -gt 0 ]; then
  if can_apt && { [ "$updated" -eq 1 ] || apt-get update -qq >/dev/null; } \
      && apt-cache show tango-db tango-test >/dev/null 2>&1; then
    updated=1
    echo "system-deps: installing ${optional[*]} with apt-get (C++ TANGO test tier)"
    # the tests create databases of their own: the package need not configure one
    echo "tango-db tango-db/dbconfig-install boolean false" | debconf-set-selections
    apt_install "${optional[@]}" ||
      echo "system-deps: could not install ${optional[*]}; the C++ TANGO tests will skip" >&2
  else
    echo "system-deps: optional ${optional[*]} not installed; the C++ TANGO tests will skip." >&2
    echo "  Debian/Ubuntu: sudo apt-get install -y tango-db tango-test mariadb-client" >&2
  fi
fi
exit 0
