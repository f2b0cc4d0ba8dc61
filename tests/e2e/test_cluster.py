"""`make cluster`: HAProxy in front of two app processes on one PostgreSQL database (a fresh one,
dropped afterwards) and one S3 bucket (moto's server on loopback), started by
scripts/run_cluster.sh exactly as `make cluster` starts it.

- Due periodic jobs run once per cluster: both processes run the scheduler, one job_run row
  per job.
- Killing the process that holds a browser's sticky session loses nothing: the browser's next
  action (loading the page again) lands on the other process (demo sign-in is kept in the
  Streamlit session, so the user signs in again there), every change committed through the
  pages and the API is there,
  the model file is read back from S3, and the API keeps answering from the survivor.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import text

from core.db import Database
from tests.api.helpers import new_model, register_files, toy_files
from tests.e2e.conftest import (
    choose,
    click_button,
    expect_text,
    fill,
    go_to,
    open_app,
    sign_in_demo,
)
from tests.fixtures.quorum_server import (
    Cluster,
    MotoS3,
    drop_postgres_database,
    new_postgres_database,
    postgres_server_or_skip,
    seed_people,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

COOKIE = "QUORUM_REPLICA"
REPLICA_HEADER = "x-quorum-replica"
START_S = 420  # on a machine whose cores are all busy a process takes minutes to start
SCHEDULER_FIRST_RUN_S = 10  # core.scheduler.Scheduler's first_run_delay


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, dict[str, str]]]:
    server = postgres_server_or_skip("Cluster tests")
    directory = tmp_path_factory.mktemp("cluster")
    s3 = MotoS3(directory / "moto.log").start()
    url = new_postgres_database(server, "quorum_cluster")
    cluster: Cluster | None = None
    try:
        tokens = seed_people(url, "cluster-tests")
        env = {
            "QUORUM_DATABASE_URL": url,
            "QUORUM_ARTIFACT_STORE": f"s3://{s3.bucket}/quorum",
            "QUORUM_ARTIFACT_STORE_OPTIONS": json.dumps(s3.options()),
            "QUORUM_SCHEDULER": "on",
        }
        cluster = Cluster(directory, env).start(timeout=START_S)
        yield cluster, tokens
    finally:
        if cluster is not None:
            cluster.stop()
        s3.stop()
        drop_postgres_database(server, url)


def job_runs(cluster: Cluster) -> list[tuple[str, int]]:
    db = Database(cluster.env["QUORUM_DATABASE_URL"])
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT job, pid FROM job_run ORDER BY id")).all()
    finally:
        db.dispose()
    return [(str(job), int(pid)) for job, pid in rows]


def test_due_jobs_run_once_per_cluster(running: tuple[Cluster, dict[str, str]]) -> None:
    cluster, _ = running
    # Every process starts its scheduler as the server starts, before it answers the health
    # check; each first tries every job SCHEDULER_FIRST_RUN_S later. Every job is then due, so
    # one run each is recorded per cluster (two if the processes did not share the claim).
    time.sleep(max(0.0, cluster.healthy_at + SCHEDULER_FIRST_RUN_S + 8 - time.monotonic()))
    runs = job_runs(cluster)
    assert time.monotonic() - cluster.healthy_at < 50, "too slow to tell one interval from the next"
    per_job: dict[str, int] = {}
    for job, _pid in runs:
        per_job[job] = per_job.get(job, 0) + 1
    assert {"audit.checkpoint", "compliance.remind_expiring", "notifications.deliver"} <= set(
        per_job
    ), runs
    assert set(per_job.values()) == {1}, runs  # every due job once per cluster
    pids = {cluster.pid_of(name) for name in cluster.names()}
    assert {pid for _job, pid in runs} <= pids


def test_killing_the_sticky_replica_loses_nothing(
    running: tuple[Cluster, dict[str, str]], context, page
) -> None:
    cluster, tokens = running
    dana = httpx.Client(
        base_url=f"{cluster.url}/api/v1",
        headers={"Authorization": f"Bearer {tokens['dana']}"},
        timeout=120,
    )
    riley = httpx.Client(
        base_url=f"{cluster.url}/api/v1",
        headers={"Authorization": f"Bearer {tokens['riley']}"},
        timeout=120,
    )
    # --- before: API calls spread over both processes, a model file into S3 -----------------
    name = "cluster-scorer"
    new_model(dana, name)
    model_bytes, eval_bytes = toy_files(seed=3)
    reply = dana.post(
        f"/models/{name}/versions",
        files=register_files(model_bytes, eval_bytes),
        data={"submit": "true"},
    )
    assert reply.status_code == 201, reply.text
    answered = {dana.get("/me").headers[REPLICA_HEADER] for _ in range(4)}
    assert answered == set(cluster.names()), "the API is spread round-robin"
    by_api = "Checked the calibration through the API."
    reply = riley.post(f"/models/{name}/versions/1/comments", json={"body": by_api})
    assert reply.status_code == 201, reply.text

    # --- a browser session, sticky to one process, commits a comment ------------------------
    open_app(page, cluster)
    sign_in_demo(page, "riley")
    go_to(page, "Reviews")
    choose(page, "Model", name)
    by_page = "Checked the thresholds on the page."
    fill(page, "Comment", by_page)
    click_button(page, "Post comment")
    expect_text(page, by_page)
    holder = {c["name"]: c["value"] for c in context.cookies()}[COOKIE]
    survivor = next(n for n in cluster.names() if n != holder)

    # --- the process holding the session dies ------------------------------------------
    cluster.kill(holder)
    # The user's next action: the page again (on its own the browser retries its WebSocket
    # with a back-off; on a busy machine that took from seconds to minutes). HAProxy sends it
    # to the survivor, which starts a new Streamlit session: the signed demo-session cookie
    # (the same cookie secret in every process) signs the user in there again.
    reply = page.reload()
    assert reply is not None and reply.headers[REPLICA_HEADER] == survivor
    page.get_by_role("link", name="Reviews").first.wait_for()
    assert page.get_by_role("button", name="Sign in").count() == 0
    assert {c["name"]: c["value"] for c in context.cookies()}[COOKIE] == survivor
    go_to(page, "Reviews")
    choose(page, "Model", name)
    expect_text(page, by_page)
    expect_text(page, by_api)

    # --- the API: every committed change, from the survivor only --------------------------
    replies = [riley.get(f"/models/{name}/versions/1/comments") for _ in range(4)]
    assert {r.status_code for r in replies} == {200}
    assert {r.headers[REPLICA_HEADER] for r in replies} == {survivor}
    bodies = json.dumps(replies[0].json())
    assert by_api in bodies and by_page in bodies
    artifact = dana.get(f"/models/{name}/versions/1/artifact")
    assert artifact.status_code == 200, artifact.text
    assert artifact.content == model_bytes
