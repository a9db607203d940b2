#!/usr/bin/env bash
# Makes sure the system programs the test suite starts itself are installed (`make system-deps`).
#   required: redis-server
#   C++ TANGO tier (tests/integration/tango/test_cpp.py, make bench-tango): Debian's
#             mariadb-server (the tests start their own mariadbd on a temporary data directory,
#             tests/support/mariadb_server.py), tango-db (the C++ DataBaseds and the SQL of the
#             TANGO schema) and tango-test (the C++ TangoTest). Without them those tests skip,
#             saying why -- and fail when CI=true, so under CI=true this script fails too when
#             it cannot install them.
# Installs with apt-get when running as root on Debian/Ubuntu; otherwise says what to do.
# Neither package's service is configured or started: tango-db is preseeded not to create a
# database (dbconfig-common, preseed_tango_db), and while apt-get runs, a policy-rc.d (unless
# the machine has one) keeps MariaDB's and tango-db's init scripts from starting anything.
set -euo pipefail

can_apt() { [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; }
in_ci() { [ "$(printf '%s' "${CI:-}" | tr '[:upper:]' '[:lower:]')" = "true" ]; }
updated=0
apt_update() {
  if [ "$updated" -eq 0 ]; then apt-get update -qq >/dev/null; updated=1; fi
}
own_policy=0
drop_policy() { if [ "$own_policy" -eq 1 ]; then rm -f /usr/sbin/policy-rc.d; fi; }
trap drop_policy EXIT
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt_update
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    # 101: "action forbidden" -- invoke-rc.d starts no service the packages bring
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  local status=0
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null || status=$?
  drop_policy
  own_policy=0
  return "$status"
}

# The tests create databases of their own: tango-db's dbconfig-common need not configure one
# (with no MariaDB running it could not, and the package would fail to configure). Its
# configuration file says so, unless one exists (a machine whose TANGO database dbconfig-common
# made): dbconfig-common copies it into debconf even where debconf-set-selections cannot preseed
# (a template left behind by a purge); the debconf answer is set too where it can be.
preseed_tango_db() {
  local conf=/etc/dbconfig-common/tango-db.conf
  if [ ! -e "$conf" ]; then
    mkdir -p /etc/dbconfig-common
    printf "dbc_install='false'\ndbc_dbtype='mysql'\n" >"$conf"
  fi
  echo "tango-db tango-db/dbconfig-install boolean false" \
    | debconf-set-selections 2>/dev/null || true
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

cpp_missing() {
  cpp=()
  { [ -x /usr/sbin/mariadbd ] && [ -x /usr/bin/mariadb-install-db ]; } || cpp+=(mariadb-server)
  [ -x /usr/bin/mariadb ] || cpp+=(mariadb-client)
  { [ -x /usr/lib/tango/DataBaseds ] \
    && [ -f /usr/share/dbconfig-common/data/tango-db/install/mysql ]; } || cpp+=(tango-db)
  [ -x /usr/lib/tango/TangoTest ] || cpp+=(tango-test)
}
cpp_missing
if [ ${#cpp[@]} -gt 0 ]; then
  if can_apt && apt_update && apt-cache show "${cpp[@]}" >/dev/null 2>&1; then
    echo "system-deps: installing ${cpp[*]} with apt-get (C++ TANGO test tier)"
    preseed_tango_db
    apt_install "${cpp[@]}" || echo "system-deps: apt-get install ${cpp[*]} failed" >&2
    cpp_missing
  fi
fi
if [ ${#cpp[@]} -gt 0 ]; then
  echo "system-deps: ${cpp[*]} not installed: the C++ TANGO tests (test_cpp.py) skip (fail if CI=true)." >&2
  echo "  Debian/Ubuntu: run 'make system-deps' as root (it preseeds tango-db not to configure" >&2
  echo "  a database, then: apt-get install -y --no-install-recommends ${cpp[*]})" >&2
  if in_ci; then
    echo "system-deps: CI=true: the C++ TANGO tier must run; failing." >&2
    exit 1
  fi
fi
exit 0
