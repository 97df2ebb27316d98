"""The project's setup files agree with each other, and the notebooks are committed clean."""

import json
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_every_dependency_of_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = {k: v for k, v in project["optional-dependencies"].items() if k != "reference"}  # ns-3: 520 MB, opt-in
    wanted = {_name(r) for r in project["dependencies"] + [r for extra in extras.values() for r in extra]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    listed = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            listed |= {_name(d) for d in dep.get("pip", []) if not d.startswith("-")}
        else:
            listed.add(_name(dep))
    assert wanted - listed == set(), f"missing from environment.yml: {sorted(wanted - listed)}"
    assert "python" in listed


def test_notebooks_have_no_outputs_and_a_parameters_cell_with_quick():
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    assert notebooks, "no notebooks found"
    for nb_path in notebooks:
        nb = json.loads(nb_path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), nb_path.name
        tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{nb_path.name}: needs one cell tagged 'parameters'"
        assert "QUICK = False" in "".join(tagged[0]["source"]), nb_path.name


def test_readme_starts_with_the_two_commands():
    head = (ROOT / "README.md").read_text().splitlines()[:8]
    assert any(line.startswith("make study") for line in head)
    assert any(line.startswith("make test") for line in head)


def test_ci_script_installs_the_debian_tools_then_runs_make_test():
    ci = (ROOT / ".ci" / "run").read_text()
    for pkg in ("apt-get update", "dovecot-imapd", "dovecot-pop3d", "tcpdump", "tshark", "libpcap0.8"):
        assert pkg in ci, pkg
    assert ci.index("apt-get update") < ci.index("make test")
