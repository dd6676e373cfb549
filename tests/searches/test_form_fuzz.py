"""The new-search form driven with generated input: never a server error, never half-written."""
import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings, strategies as st

from searches.models import Candidate, Search

FIELDS = ["name", "dataset", "space", "strategy", "max_candidates", "epochs", "parallel", "objective",
          "seed", "batch_size", "lr", "early_stopping", "train_fraction", "resolution", "latency_target_ms",
          "warm_start"]

values = st.one_of(
    st.text(max_size=30), st.integers(min_value=-10**12, max_value=10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["digits", "cifar10", "chain", "cell", "text", "random", "evolution", "median",
                     "accuracy_params", "0", "1", "", " ", "1e309", "NaN", "../../etc/passwd", "\x00"]),
)
form_data = st.dictionaries(st.sampled_from(FIELDS), values, max_size=len(FIELDS))


@pytest.mark.django_db
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=form_data)
def test_generated_form_input_gets_a_page_never_a_server_error(alice, data):
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    before = Search.objects.count()
    response = client.post(reverse("search_new"), data)
    assert response.status_code in (302, 400), response.status_code
    if response.status_code == 400:
        assert Search.objects.count() == before  # a refused form writes nothing
        assert 'class="error"' in response.content.decode()
    else:
        search = Search.objects.latest("id")
        assert search.owner == alice and 1 <= search.max_candidates and 1 <= search.parallel <= search.max_candidates
    assert Candidate.objects.filter(search__owner=alice).count() == 0  # nothing trains before commit
