"""What the distribution installs: the project's own import names only, never a top-level `kernels`.

The Triton kernels stay in the repository's kernels/ folder and install as `vqi2i_kernels` (pyproject.toml's
package-dir); in a checkout that is not installed, vqi2i_kernels.py at the root stands in for that mapping.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_importing_every_module_imports_no_top_level_kernels():
    """Every module of vqi2i and of its kernels, imported from this checkout in a fresh process: the kernels
    load as `vqi2i_kernels` from kernels/, and nothing named `kernels` is imported."""
    code = (
        "import importlib, importlib.util, pkgutil, sys\n"
        "from pathlib import Path\n"
        "import vqi2i, vqi2i_kernels\n"
        "names = [m.name for m in pkgutil.walk_packages(vqi2i.__path__, 'vqi2i.') if m.name != 'vqi2i.__main__']\n"
        "names += [m.name for m in pkgutil.walk_packages(vqi2i_kernels.__path__, 'vqi2i_kernels.')\n"
        "          if '.triton_' not in m.name or importlib.util.find_spec('triton') is not None]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "assert Path(vqi2i_kernels.dispatch.__file__).parent == Path(sys.argv[1]) / 'kernels', vqi2i_kernels.__file__\n"
        "clash = sorted(m for m in sys.modules if m.split('.')[0] == 'kernels')\n"
        "assert not clash, f'imported a top-level kernels: {clash}'\n"
        "print(len(names))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("VQI2I_KERNELS", "TRITON_INTERPRET")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    result = subprocess.run([sys.executable, "-c", code, str(ROOT)], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) > 50  # every module was reached


def test_the_listed_packages_are_the_package_folders():
    """package-dir rules out package discovery, so pyproject.toml lists the packages: every folder of vqi2i
    with an __init__.py, and vqi2i_kernels mapped onto kernels/ (the checkout's stand-in is not shipped)."""
    tomllib = pytest.importorskip("tomllib")
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "vqi2i").rglob("__init__.py")}
    assert set(setuptools["packages"]) == folders | {"vqi2i_kernels"}
    assert setuptools["package-dir"] == {"vqi2i_kernels": "kernels"}
    assert "kernels" not in setuptools["packages"] and "py-modules" not in setuptools
