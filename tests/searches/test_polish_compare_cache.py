"""The comparison page's reads over every finished candidate are cached (issue 18 follow-up):
a second page view reuses them, and a candidate that finishes afterwards is counted at once."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bench.dashboard import fill_search
from searches import selectors_compare, services
from searches.models import Candidate

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def running(alice):
    search = services.search_create(owner=alice, name="cached", dataset="digits", space="cell", strategy="random",
                                    max_candidates=60, epochs=2, parallel=2, seed=5)
    fill_search(search, 60, epochs=2, seed=11, running=1)
    return search


def counted(decisions) -> int:
    return sum(c["count"] for c in decisions[0]["choices"])


def test_a_second_view_reuses_the_aggregates_and_a_new_finish_is_counted(running):
    finished = Candidate.objects.filter(search=running, state="finished", best_val_accuracy__isnull=False)
    before = finished.count()
    first = selectors_compare.decision_stats(running), selectors_compare.parallel_sample(running)
    with CaptureQueriesContext(connection) as queries:
        again = selectors_compare.decision_stats(running), selectors_compare.parallel_sample(running)
    assert again == first
    assert not any("percentile_cont" in q["sql"] or "row_number" in q["sql"] for q in queries.captured_queries)
    assert counted(first[0]) == before == first[1]["total"]

    last = Candidate.objects.get(search=running, state="running")
    assert last.best_val_accuracy is not None
    services.candidate_finish(last, test_accuracy=0.5, test_macro_recall=0.5, test_macro_f1=0.5,
                              confusion_matrix=[], checkpoint_path="", checkpoint_size=0, checkpoint_sha256="")
    assert finished.count() == before + 1
    decisions, sample = selectors_compare.decision_stats(running), selectors_compare.parallel_sample(running)
    assert counted(decisions) == before + 1 and sample["total"] == before + 1
    assert last.id in {r["id"] for r in sample["rows"]}

