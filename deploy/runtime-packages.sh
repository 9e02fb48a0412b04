#!/bin/sh
# Prints the Debian packages that hold the shared libraries BINARY... load
# (their whole ldd closure), one per line: the runtime stage of
# deploy/Dockerfile installs exactly these, and scripts/check_deploy.sh runs it
# on a local build. Usage: deploy/runtime-packages.sh BINARY...
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for binary in "$@"; do
  if ! ldd "$binary" > "$tmp/ldd" || grep 'not found' "$tmp/ldd" >&2; then
    echo "runtime-packages: $binary: not a binary, or a library above is not found" >&2
    exit 1
  fi
  awk '$2 == "=>" && $3 ~ /^\// { print $3 }' "$tmp/ldd" >> "$tmp/all-libs"
done
sort -u "$tmp/all-libs" > "$tmp/libs"
# Packages list /lib or /usr/lib paths (usrmerge), the soname link or the file
# it points to: every form of each library, looked up in dpkg's file lists.
while read -r lib; do
  for path in "$lib" "$(readlink -f "$lib")"; do
    printf '%s\n%s\n' "/usr${path#/usr}" "${path#/usr}"
  done
done < "$tmp/libs" | sort -u > "$tmp/forms"
grep -H -x -F -f "$tmp/forms" /var/lib/dpkg/info/*.list |
  sed 's#^/var/lib/dpkg/info/\([^:]*\)\(:[a-z0-9]*\)\{0,1\}\.list:#\1 #' > "$tmp/owners"
while read -r lib; do
  real=$(readlink -f "$lib")
  package=$(awk -v a="/usr${lib#/usr}" -v b="${lib#/usr}" -v c="/usr${real#/usr}" \
                -v d="${real#/usr}" '$2 == a || $2 == b || $2 == c || $2 == d { print $1; exit }' \
                "$tmp/owners")
  if [ -z "$package" ]; then
    echo "runtime-packages: no Debian package holds $lib" >&2
    exit 1
  fi
  echo "$package"
done < "$tmp/libs" > "$tmp/packages"
sort -u "$tmp/packages"
