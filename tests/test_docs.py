"""Every command and snippet in the documentation runs.

The test collects each fenced block of README.md and docs/*.md whose info
string is ``python``, ``bash``, ``sh``, ``shell`` or ``console`` and runs it
at a tiny scale, one test per block (its id is ``file:line`` of the opening
fence). Blocks in other languages (``text``, ``bibtex``, ``yaml``, ...) are
not run. A block whose opening fence directly follows the line

    <!-- not run by the tests: REASON -->

is skipped with that reason; the comment without a reason fails, and so does
the comment anywhere but right above a fence.

How a block runs (docs/usage.md, "Tests, and how the documentation is tested"):

* In one working directory per documentation file, in the file's order, as
  a reader would type them: a block runs after the file's earlier blocks
  (run first if they have not run yet, so ``-k`` can pick any one block).
  The directory links every top-level entry of the repository, so paths such
  as ``benchmarks/...`` resolve, while ``runs/`` and other outputs stay in
  the temporary directory.
* Shell blocks (``bash``, ``sh``, ``shell``; of a ``console`` block, the
  lines after ``$ ``) with ``bash -euo pipefail``, the repository on
  ``PYTHONPATH`` and this interpreter's directory first on ``PATH``.
  ``MB2PO_SCALE=smoke`` makes ``experiments.run`` and
  ``experiments.reproduce`` shrink whatever config they load to
  ``mb2po_jax.pipeline.config.smoke_scale`` (the command line's own overrides
  still apply on top).
* Python blocks in one Python process per file, one namespace, as when
  pasted into one interpreter.
* Datasets: a temporary local Minari store (``MINARI_DATASETS_PATH``) holding
  tiny random-policy datasets under the task names the docs use
  (``mb2po/<env>/<kind>-v0``), and a directory of tiny D4RL-style HDF5 files
  that replaces the placeholder directory ``/path/`` (e.g.
  ``hdf5:/path/hopper_medium_replay-v2.hdf5``). ``D4RL_DATASET_DIR`` points
  at it too. Nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import select
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RUN_LANGUAGES = {"python", "bash", "sh", "shell", "console"}
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
NOT_RUN = re.compile(r"^\s*<!--\s*not run by the tests:?(.*?)-->\s*$")
NOT_RUN_START = re.compile(r"^\s*<!--\s*not run by the tests")
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
PLACEHOLDER_DIR = "/path/"
BLOCK_TIMEOUT_S = 900

# The tiny datasets, (env, kind) -> steps under the task names the docs use,
# and D4RL-style files for the placeholder directory, name -> (env id, steps).
# The hopper datasets the blocks train on have the quickstart's 20,000 rows:
# the same shapes compile to the same programs, which the suite's persistent
# compilation cache (tests/conftest.py) then serves to every later run.
MINARI_DATASETS = {("hopper", "mixed"): 20_000, ("hopper", "medium"): 600,
                   ("walker2d", "mixed"): 600, ("halfcheetah", "mixed"): 600,
                   ("halfcheetah", "medium"): 600}
D4RL_FILES = {"hopper_medium_replay-v2.hdf5": ("Hopper-v5", 20_000),
              "hopper_medium-v2.hdf5": ("Hopper-v5", 600)}


@dataclasses.dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    comment: str | None  # the not-run comment's line right above, if any

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.language in RUN_LANGUAGES and self.comment is None

    @property
    def reason(self) -> str:
        match = NOT_RUN.match(self.comment or "")
        return match.group(1).strip() if match else ""


def collect_blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, with its language and the
    not-run comment directly above it."""
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        language = (opening["info"].strip().split() or [""])[0].lower()
        body, j = [], i + 1
        while j < len(lines):
            closing = FENCE.match(lines[j])
            if (closing and closing["fence"][0] == fence[0]
                    and len(closing["fence"]) >= len(fence) and not closing["info"].strip()):
                break
            body.append(lines[j][indent:] if lines[j][:indent].isspace() else lines[j])
            j += 1
        above = lines[i - 1] if i > 0 else ""
        comment = above if NOT_RUN_START.match(above) else None
        blocks.append(Block(path, i + 1, language, "\n".join(body) + "\n", comment))
        i = j + 1
    return blocks


ALL_BLOCKS = [block for path in DOC_FILES for block in collect_blocks(path)]
CHECKED = [block for block in ALL_BLOCKS
           if block.language in RUN_LANGUAGES or block.comment is not None]


def test_the_collector_finds_the_docs_blocks() -> None:
    ids = {block.id for block in ALL_BLOCKS}
    assert any(i.startswith("README.md:") for i in ids)
    assert any(i.startswith("docs/usage.md:") for i in ids)
    readme = [b for b in ALL_BLOCKS if b.path.name == "README.md"]
    assert any(b.language == "bibtex" and not b.runs for b in readme)
    assert sum(b.runs and b.language == "python" for b in readme) >= 2


def test_the_collector_reads_fences_languages_and_comments(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(textwrap.dedent("""\
        text
        ```bash
        echo one
        ```
        <!-- not run by the tests: hours of GPU -->
        ````python
        x = 1
        ```
        ````
        <!-- not run by the tests: -->
        ~~~sh
        echo three
        ~~~
        ```text
        not code
        ```
        - a list item:
          ```console
          $ echo four
          four
          ```
        """))
    blocks = collect_blocks(doc)
    assert [(b.line, b.language, b.runs) for b in blocks] == [
        (2, "bash", True), (6, "python", False), (11, "sh", False), (14, "text", False),
        (18, "console", True)]
    assert blocks[1].reason == "hours of GPU" and blocks[1].code == "x = 1\n```\n"
    assert blocks[2].comment is not None and blocks[2].reason == ""
    assert _shell_script(blocks[4]).strip() == "echo four"


def test_not_run_comments_sit_right_above_a_block() -> None:
    """A not-run comment anywhere else is a mistake: it skips nothing."""
    misplaced = []
    for path in DOC_FILES:
        lines = path.read_text().splitlines()
        for n, line in enumerate(lines):
            if NOT_RUN_START.match(line) and not (
                    n + 1 < len(lines) and FENCE.match(lines[n + 1])):
                misplaced.append(f"{path.relative_to(REPO)}:{n + 1}")
    assert not misplaced, f"not-run comments not directly above a fenced block: {misplaced}"


# ------------------------------------------------------------------ fixtures


def _record_episodes(env_id: str, num_steps: int, seed: int) -> dict[str, np.ndarray]:
    """``num_steps`` uniformly random steps in ``env_id``, as D4RL's arrays."""
    import gymnasium as gym

    env = gym.make(env_id)
    env.action_space.seed(seed)
    rows = {k: [] for k in ("observations", "actions", "rewards", "next_observations",
                            "terminals", "timeouts")}
    obs, _ = env.reset(seed=seed)
    for _ in range(num_steps):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        for key, value in (("observations", obs), ("actions", action), ("rewards", reward),
                           ("next_observations", next_obs), ("terminals", terminated),
                           ("timeouts", truncated)):
            rows[key].append(value)
        obs = env.reset()[0] if terminated or truncated else next_obs
    rows["timeouts"][-1] = not rows["terminals"][-1]  # the file's end cuts the episode
    env.close()
    dtypes = {"terminals": bool, "timeouts": bool}
    return {k: np.asarray(v, dtype=dtypes.get(k, np.float32)) for k, v in rows.items()}


@pytest.fixture(scope="session")
def doc_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A Minari store with the docs' task datasets and a D4RL-style directory,
    made once."""
    import h5py

    from mb2po_jax import envs
    from mb2po_jax.data.registry import ENV_IDS
    from mb2po_jax.datagen import make_minari_dataset

    root = tmp_path_factory.mktemp("doc_data")
    store, d4rl = root / "minari", root / "d4rl"
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(store)
    try:
        for seed, ((env, kind), steps) in enumerate(MINARI_DATASETS.items()):
            refs = envs.lookup_ref_scores(ENV_IDS[env])
            make_minari_dataset(f"mb2po/{env}/{kind}-v0", ENV_IDS[env], steps, seed=seed,
                                ref_min_score=refs[0], ref_max_score=refs[1])
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH")
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous
    d4rl.mkdir()
    for seed, (name, (env_id, steps)) in enumerate(D4RL_FILES.items()):
        with h5py.File(d4rl / name, "w") as file:
            for key, value in _record_episodes(env_id, steps, seed).items():
                file.create_dataset(key, data=value)
    return {"store": store, "d4rl": d4rl}


def _work_dir(root: Path) -> Path:
    """A directory that looks like the repository's root to a block (every
    top-level entry linked) but keeps what the block writes."""
    root.mkdir(parents=True, exist_ok=True)
    for entry in REPO.iterdir():
        if entry.name in {".git", "runs"} or (root / entry.name).exists():
            continue
        (root / entry.name).symlink_to(entry)
    return root


def _environment(data: dict[str, Path]) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "MB2PO_SCALE": "smoke",
        "MINARI_DATASETS_PATH": str(data["store"]),
        "D4RL_DATASET_DIR": str(data["d4rl"]),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        "MPLBACKEND": "Agg",
    })
    return env


def _substitute(code: str, data: dict[str, Path]) -> str:
    return code.replace(PLACEHOLDER_DIR, f"{data['d4rl']}/")


def _shell_script(block: Block) -> str:
    if block.language != "console":
        return block.code
    return "".join(line[2:] + "\n" for line in block.code.splitlines() if line.startswith("$ "))


# The Python process of a file: it executes each block in one namespace and
# answers with a JSON line; the blocks' own output goes to its stderr.
_WORKER = textwrap.dedent("""\
    import contextlib, json, sys, traceback
    namespace = {"__name__": "__main__"}
    protocol = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                exec(compile(request["code"], request["name"], "exec"), namespace)
            answer = {"ok": True}
        except BaseException:
            answer = {"ok": False, "error": traceback.format_exc()}
        protocol.write(json.dumps(answer) + "\\n")
        protocol.flush()
    """)


class DocRunner:
    """Runs one documentation file's blocks in order in its own directory."""

    def __init__(self, path: Path, root: Path, data: dict[str, Path]) -> None:
        self.path, self.data = path, data
        self.cwd = _work_dir(root)
        self.env = _environment(data)
        self.outcomes: dict[int, str | None] = {}  # line -> None (passed) or the failure
        self.python: subprocess.Popen | None = None
        self.python_log = self.cwd / "python-blocks.log"

    def run(self, block: Block) -> str | None:
        """Runs the file's earlier blocks that have not run, then this one;
        returns None or what failed."""
        for earlier in collect_blocks(self.path):
            if earlier.line >= block.line:
                break
            if earlier.runs and earlier.line not in self.outcomes:
                self.outcomes[earlier.line] = self._run_one(earlier)
        failed = [line for line, problem in self.outcomes.items()
                  if problem is not None and line < block.line]
        if failed:
            return (f"{block.id} follows block(s) at line(s) {failed} of the same file, "
                    f"which failed; fix those first.")
        if block.line not in self.outcomes:
            self.outcomes[block.line] = self._run_one(block)
        return self.outcomes[block.line]

    def _run_one(self, block: Block) -> str | None:
        code = _substitute(block.code, self.data)
        if block.language == "python":
            return self._run_python(block, code)
        script = self.cwd / f"block_{block.line}.sh"
        script.write_text(_substitute(_shell_script(block), self.data))
        done = subprocess.run(["bash", "-euo", "pipefail", str(script)], cwd=self.cwd,
                              env=self.env, capture_output=True, text=True,
                              timeout=BLOCK_TIMEOUT_S)
        if done.returncode:
            return (f"{block.id} exited with {done.returncode}\n--- script\n{script.read_text()}"
                    f"--- stdout (end)\n{done.stdout[-3000:]}\n--- stderr (end)\n"
                    f"{done.stderr[-6000:]}")
        return None

    def _run_python(self, block: Block, code: str) -> str | None:
        if self.python is None:
            self.python = subprocess.Popen(
                [sys.executable, "-c", _WORKER], cwd=self.cwd, env=self.env, text=True,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self.python_log.open("w"))
        if self.python.poll() is not None:
            return f"{block.id}: the file's Python process has ended (an earlier block)"
        self.python.stdin.write(json.dumps({"code": code, "name": block.id}) + "\n")
        self.python.stdin.flush()
        ready, _, _ = select.select([self.python.stdout], [], [], BLOCK_TIMEOUT_S)
        if not ready:
            self.python.kill()
            return f"{block.id}: no answer within {BLOCK_TIMEOUT_S} s (stopped)"
        answer = self.python.stdout.readline()
        if not answer:
            return f"{block.id}: the Python process ended\n{self.python_log.read_text()[-6000:]}"
        answer = json.loads(answer)
        if answer["ok"]:
            return None
        return f"{block.id} raised:\n{answer['error']}\n--- output (end)\n" \
               f"{self.python_log.read_text()[-3000:]}"

    def close(self) -> None:
        if self.python is not None:
            self.python.stdin.close()
            self.python.wait(timeout=60)


@pytest.fixture(scope="session")
def doc_runners(tmp_path_factory: pytest.TempPathFactory, doc_data: dict[str, Path]):
    runners: dict[Path, DocRunner] = {}

    def get(path: Path) -> DocRunner:
        if path not in runners:
            name = str(path.relative_to(REPO)).replace("/", "_").replace(".", "_")
            runners[path] = DocRunner(path, tmp_path_factory.mktemp(name), doc_data)
        return runners[path]

    yield get
    for runner in runners.values():
        runner.close()


@pytest.mark.parametrize("block", CHECKED, ids=[block.id for block in CHECKED])
def test_doc_block(block: Block, doc_runners) -> None:
    if block.comment is not None:
        assert NOT_RUN.match(block.comment) and block.reason, (
            f"{block.id}: the comment above the block must say why it is not run: "
            f"'<!-- not run by the tests: REASON -->', got {block.comment.strip()!r}")
        pytest.skip(f"not run: {block.reason}")
    problem = doc_runners(block.path).run(block)
    assert problem is None, problem
