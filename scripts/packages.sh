# Debian/Ubuntu packages the demo and the tests need, installed when missing: as root with
# apt-get; otherwise, on a terminal, after asking once, with sudo apt-get; otherwise the apt line
# is printed and the caller stops. Sourced by scripts/test and .ci/run.

# The packages missing on this machine, one per line.
missing_packages() {
  if [ -z "${VD_TEST_DATABASE_URL:-}" ] && ! command -v initdb >/dev/null 2>&1 \
     && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo postgresql
  fi
  command -v xmllint >/dev/null 2>&1 || echo libxml2-utils
  command -v curl >/dev/null 2>&1 || echo curl
  command -v pkg-config >/dev/null 2>&1 || echo pkg-config
  pkg-config --exists openssl 2>/dev/null || echo libssl-dev
  # Independent SOAP stacks the suite drives: PHP's SoapClient and gSOAP.
  command -v php >/dev/null 2>&1 || echo php-cli
  php -m 2>/dev/null | grep -qx soap || echo php-soap
  command -v wsdl2h >/dev/null 2>&1 || echo gsoap
  command -v python3 >/dev/null 2>&1 || echo python3
  # Debian ships venv without ensurepip, which python3-venv adds.
  if ! python3 -c 'import zeep' >/dev/null 2>&1 && ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    echo python3-venv
  fi
}

# Installs what missing_packages names; returns non-zero when it could not.
install_missing_packages() {
  local who="$1" need
  mapfile -t need < <(missing_packages)
  [ ${#need[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "$who: installing ${need[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
    return
  fi
  if [ -t 0 ] && command -v sudo >/dev/null 2>&1; then
    local answer
    read -r -p "$who: ${need[*]} missing; install with 'sudo apt-get install ${need[*]}'? [Y/n] " answer || answer=n
    case "${answer:-y}" in
      [yY]*)
        if sudo apt-get update -q && sudo apt-get install -y -q --no-install-recommends "${need[@]}"; then
          return 0
        fi
        echo "$who: sudo apt-get install ${need[*]} failed" >&2
        return 1
        ;;
    esac
  fi
  echo "$who: missing system packages: ${need[*]}" >&2
  echo "install them with: sudo apt-get install ${need[*]}" >&2
  return 1
}
