"""`vqi2i_kernels` in a checkout that is not installed (the repository root on sys.path, as for `python -m
vqi2i ...` or `python scripts/...` run from the root).

The kernels live in the repository's top-level `kernels/` folder, which pip installs under the project's own
name `vqi2i_kernels` (pyproject.toml's package-dir), not as a top-level `kernels`, a name another
distribution already uses. This module is what `import vqi2i_kernels` finds in a bare checkout: it loads
`kernels/__init__.py` as the package `vqi2i_kernels`, with `kernels/` as its search path, and puts that
package in its own place in sys.modules, so `vqi2i_kernels.dispatch` and the rest load from `kernels/` under
the same name as when installed (the kernel files import each other relatively) and nothing named `kernels`
is ever imported. It is not part of the installed distribution.
"""

import importlib.util
import sys
from pathlib import Path

_FOLDER = Path(__file__).resolve().parent / "kernels"
_spec = importlib.util.spec_from_file_location(__name__, _FOLDER / "__init__.py",
                                               submodule_search_locations=[str(_FOLDER)])
_package = importlib.util.module_from_spec(_spec)
sys.modules[__name__] = _package
_spec.loader.exec_module(_package)
