# Sourced by the training scripts: `ensure_venv DIR REQUIREMENTS STAMP` creates the virtual environment DIR
# (with $PYTHON, default python3) and installs REQUIREMENTS into it unless DIR was last set up for STAMP (a hash
# of the pins it was installed from), so a changed pin reinstalls and an unchanged one costs nothing.
ensure_venv() {
  local venv="$1" requirements="$2" want="$3" stamp="$1/.requirements.sha256"
  if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    echo "$want" >"$stamp"
  fi
}
