"""pytest setup: import the generated bindings (scripts/gen-bindings.sh --testing writes them,
with libfieldlink_mobile.so next to fieldlink_mobile.py, into $FIELDLINK_BINDINGS_DIR/python)."""

import os
import pathlib
import sys

_root = pathlib.Path(__file__).resolve().parents[2]
_bindings = pathlib.Path(
    os.environ.get("FIELDLINK_BINDINGS_DIR", _root / "target" / "bindings")
) / "python"
if not (_bindings / "fieldlink_mobile.py").exists():
    raise RuntimeError(
        f"no generated bindings in {_bindings}: run scripts/gen-bindings.sh --testing first"
    )
sys.path.insert(0, str(_bindings))
