"""New batches: stable splits as data grows, batch specs, the workspace lock and the failure webhook."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dlops.batches import batch_source
from dlops.data.splitting import split_frame, split_images, split_in_blocks
from dlops.params import ConfigError, SplitConfig, load_params
from dlops.workspace import WorkspaceBusy, notify, workspace_lock

REPO = Path(__file__).resolve().parents[2]


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "sex": rng.choice(["F", "M"], n),
            "income": rng.choice(["<=50K", ">50K"], n),
        }
    )


def _assignment(splits: dict[str, pd.DataFrame]) -> dict[int, str]:
    return {int(i): name for name, frame in splits.items() for i in frame.index}


def test_a_grown_dataset_keeps_every_earlier_row_in_its_split() -> None:
    columns = (
        load_params(REPO / "params.yaml").task("tabular").columns.model_copy(update={"sensitive": ["sex"]})
    )
    split = SplitConfig()
    base = _table(600, 0)
    batch = _table(300, 1)
    grown = pd.concat([base, batch], ignore_index=True)
    before = _assignment(split_frame(base, columns, split))
    after = _assignment(split_in_blocks(grown, columns, split, [("base", 600), ("2026-11-30-abc", 300)]))
    assert {i: after[i] for i in before} == before  # no earlier row moved
    assert len(after) == 900
    new = [after[i] for i in range(600, 900)]
    assert 0.6 < new.count("train") / 300 < 0.8 and new.count("test") > 20  # the batch is split too
    # one block is exactly the old behaviour
    assert _assignment(split_in_blocks(base, columns, split, [("base", 600)])) == before


def test_a_copy_of_an_earlier_image_in_a_batch_joins_that_image_s_split() -> None:
    columns = load_params(REPO / "params.yaml").task("images").columns
    base = pd.DataFrame({"sha1": [f"s{i}" for i in range(200)], "label": np.arange(200) % 4})
    batch = pd.DataFrame({"sha1": ["s0", "s1", *[f"n{i}" for i in range(98)]], "label": np.arange(100) % 4})
    raw = pd.concat([base, batch], ignore_index=True)
    splits = split_images(raw, columns, SplitConfig(), [("base", 200), ("b1", 100)])
    where = {sha: name for name, frame in splits.items() for sha in frame["sha1"]}
    base_only = split_images(base, columns, SplitConfig())
    assert {s: n for n, f in base_only.items() for s in f["sha1"]} == {s: where[s] for s in base["sha1"]}
    for name, frame in splits.items():
        assert set(frame.loc[frame.index >= 200, "sha1"]) & {"s0", "s1"} <= set(base_only[name]["sha1"])
    assert sum(len(f) for f in splits.values()) == 300


def test_a_batch_spec_is_checked_like_the_task_source_and_dated() -> None:
    params = load_params(REPO / "params.yaml")
    tabular = params.task("tabular")
    source = batch_source("tabular", tabular, {"rows": 500}, "2026-11-30")
    assert source.source == "synthetic-income" and source.seed == 20261130 and source.rows == 500
    assert batch_source("tabular", tabular, {"rows": 500, "seed": 3}, "2026-11-30").seed == 3
    table = batch_source("tabular", tabular, {"source": "table", "path": "in/{date}.csv"}, "2026-12-07")
    assert table.path == "in/2026-12-07.csv"
    images = batch_source("images", params.task("images"), {"source": "npz", "path": "x.npz"}, "2026-12-07")
    assert images.size == params.task("images").ingest.size  # the task's image size by default
    with pytest.raises(ConfigError, match=r"batch for task 'tabular': .*rows"):
        batch_source("tabular", tabular, {"rows": "many"}, "2026-11-30")
    with pytest.raises(ConfigError, match="shift.*age"):
        batch_source("tabular", tabular, {"shift": {"age": 1000}}, "2026-11-30")


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from dlops.workspace import workspace_lock
    with workspace_lock(Path(sys.argv[1]), holder="test holder"):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
    """
)


def test_a_second_run_in_one_workspace_stops_or_waits(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), "3"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(WorkspaceBusy, match=r"another pipeline run holds .dlops/retrain.lock \(pid \d+"),
            workspace_lock(tmp_path, timeout_s=0),
        ):
            pass
        started = time.monotonic()
        with workspace_lock(tmp_path, timeout_s=30):  # waits for the holder, then proceeds
            waited = time.monotonic() - started
        assert waited > 0.5  # it did wait for the 3 s holder
        assert holder.wait(timeout=30) == 0  # which released the lock and ended normally
    finally:
        holder.kill()
        holder.wait()
    with workspace_lock(tmp_path):  # a killed holder leaves no stale lock
        pass


def test_a_stage_refuses_to_write_while_another_run_holds_the_workspace(tmp_path: Path) -> None:
    from dlops.workspace import ensure_free

    ensure_free(tmp_path)  # never locked: free
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), "30"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(WorkspaceBusy, match=r"pid \d+ on .* test holder, since .*stops without writing"):
            ensure_free(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    ensure_free(tmp_path)  # the holder died: free again
    with workspace_lock(tmp_path):
        ensure_free(tmp_path)  # the holder's own stages pass


def test_failures_reach_the_webhook_and_a_dead_webhook_does_not_raise() -> None:
    received: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        assert notify(url, "retrain failed", "batch quarantined: age out of range", {"flow_run_id": "x"})
    finally:
        server.shutdown()
    assert received[0]["event"] == "retrain failed" and "age out of range" in received[0]["text"]
    assert received[0]["flow_run_id"] == "x"
    assert notify(f"http://127.0.0.1:{server.server_address[1]}/gone", "retrain failed", "m") is False
    assert notify(None, "retrain failed", "only logged") is False


def test_a_quarantined_batch_keeps_no_url_password(tmp_path: Path) -> None:
    from dlops.batches import quarantine
    from dlops.params import Paths

    spec = {"source": "table", "url": "https://reader:hunter2@data.example.org/b.csv", "sha256": "ab" * 32}
    out = quarantine(None, spec, {"date": "2026-12-05", "reason": "unreadable"}, Paths(tmp_path), "tabular")
    report = (out / "report.json").read_text()
    assert "hunter2" not in report and "data.example.org/b.csv" in report
