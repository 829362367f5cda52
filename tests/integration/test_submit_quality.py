"""``cutout submit``'s report.csv carries each job's quality score (issue 26): a real API
and worker, the command run as a subprocess, the report compared with the jobs' JSON."""

from __future__ import annotations

import io

from PIL import Image

from tests.integration.test_quality_cli import blank_photo, good_photo
from tests.integration.test_submit import get_json, read_report, read_state, run_submit


def png(image: Image.Image) -> bytes:
    data = io.BytesIO()
    image.save(data, "PNG")
    return data.getvalue()


def test_the_report_has_each_jobs_score_and_a_closing_review_count(
    api_server, worker, tmp_path
) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    (src / "box.png").write_bytes(png(good_photo()))
    (src / "blank.png").write_bytes(png(blank_photo()))
    (src / "broken.png").write_bytes(b"this is not a picture at all\n" * 20)

    done = run_submit(src, out, api_server.url, "--score", "full")

    assert done.returncode == 1, done.stderr  # broken.png failed
    report = read_report(out)
    for name in ("box.png", "blank.png"):
        row = report[name]
        job = get_json(f"{api_server.url}/v1/jobs/{row['job_id']}")
        quality = job["result"]["quality"]
        assert job["options"]["score"] == "full"
        assert quality["level"] == "full"
        assert float(row["score"]) == quality["score"]
        assert 0 <= float(row["score"]) <= 1
        assert row["review"] == str(quality["review"]).lower()
        assert row["flags"].split() == quality["flags"]
    assert report["blank.png"]["score"] == "0.0"
    assert report["blank.png"]["review"] == "true"
    assert "no_subject" in report["blank.png"]["flags"].split()
    assert report["box.png"]["review"] == "false"  # u2netp scores it about 0.94
    broken = report["broken.png"]
    assert broken["status"] == "failed"
    assert broken["score"] == broken["review"] == broken["flags"] == ""
    line = (
        "1 of 2 cutouts need a look (score below the service's review threshold, "
        f"CUTOUT_REVIEW_BELOW): see {out / 'report.csv'}"
    )
    assert line in done.stderr

    # resumed quietly: nothing said, the scores kept in the state and the report
    again = run_submit(src, out, api_server.url, "--score", "full", "-q")

    assert again.returncode == 1
    assert again.stderr == ""
    assert read_report(out) == report
    assert read_state(out)["files"]["box.png"]["quality"]["level"] == "full"
