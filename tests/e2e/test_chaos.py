"""The fault suite's short form (``make chaos`` runs the long one): jobs under kills, duplicates, poison, a pause;
the edge killed during concurrent submits, a trickling webhook receiver, concurrent deploys of one name."""

from bench import chaos


def test_nothing_is_lost_duplicated_or_stuck_under_faults():
    report = chaos.run(jobs=24, pause_s=5.0, rate=1.0, concurrency=4, edge_rounds=3, trickle_jobs=8, deploy_pairs=5)
    print("\n".join(report.lines))
    assert not report.failures, report.failures
    # The figures the suite promises are all there (a check that was skipped would not print).
    printed = "\n".join(report.lines)
    for figure in (
        "jobs lost",
        "jobs with duplicated outputs",
        "status regressions",
        "worst recovery",
        # the edge killed during concurrent submits
        "submits answered",
        "jobs not terminal 120 s after the last kill",
        "keys with more than one job",
        "keys answered other than with their one job",
        "jobs no submit accounts for",
        # the trickling receiver
        "healthy delivery after its event, worst",
        # concurrent deploys of one name
        "names without one success and one failure",
        "instance count mismatches",
        "leaked models / endpoint configs",
    ):
        assert figure in printed
