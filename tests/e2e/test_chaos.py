"""The fault suite's short form (``make chaos`` runs the long one): jobs under kills, duplicates, poison, a pause."""

from bench import chaos


def test_nothing_is_lost_duplicated_or_stuck_under_faults():
    report = chaos.run(jobs=24, pause_s=5.0, rate=1.0, concurrency=4)
    print("\n".join(report.lines))
    assert not report.failures, report.failures
    # The figures the suite promises are all there (a check that was skipped would not print).
    printed = "\n".join(report.lines)
    for figure in ("jobs lost", "jobs with duplicated outputs", "status regressions", "worst recovery"):
        assert figure in printed
