import pytest
from django.urls import reverse

from searches import services
from searches.models import Search

pytestmark = pytest.mark.django_db

VALID = {"name": "from form", "dataset": "digits", "space": "chain", "strategy": "random",
         "max_candidates": "6", "epochs": "3", "parallel": "2", "objective": "val_accuracy",
         "seed": "", "batch_size": "64", "lr": "0.003"}


@pytest.fixture
def alice_search(alice):
    return services.search_create(owner=alice, name="alice's", dataset="digits", space="chain",
                                  strategy="random", max_candidates=2, epochs=1, seed=4)


@pytest.fixture
def finished_candidate(alice_search, tmp_path):
    cid = services.search_advance(alice_search.id)[0]
    cand = services.candidate_claim(cid, worker="w", device="cpu")
    path = tmp_path / "c.pt"
    path.write_bytes(b"weights")
    services.candidate_finish(cand, test_accuracy=0.9, test_macro_recall=0.9, test_macro_f1=0.9,
                              confusion_matrix=[[1]], checkpoint_path=str(path), checkpoint_size=7,
                              checkpoint_sha256="x")
    return cand


def owned_urls(search, candidate):
    return [
        reverse("search_detail", args=[search.id]),
        reverse("best_checkpoint", args=[search.id]),
        reverse("candidate_checkpoint", args=[search.id, candidate.id]),
    ]


def test_every_page_needs_a_login(client, alice_search, finished_candidate):
    for url in [reverse("search_list"), reverse("search_new")] + owned_urls(alice_search, finished_candidate):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith(reverse("login")), url


def test_it_hides_other_users_searches(client, bob, alice_search, finished_candidate):
    client.force_login(bob)
    for url in owned_urls(alice_search, finished_candidate):
        assert client.get(url).status_code == 404, url
    assert client.post(reverse("search_cancel", args=[alice_search.id])).status_code == 404
    assert "alice&#x27;s" not in client.get(reverse("search_list")).content.decode()
    alice_search.refresh_from_db()
    assert alice_search.state != Search.State.CANCELLED


def test_owner_downloads_the_best_and_each_checkpoint(client, alice, alice_search, finished_candidate):
    client.force_login(alice)
    for name in ("best_checkpoint", "candidate_checkpoint"):
        args = [alice_search.id] + ([finished_candidate.id] if name == "candidate_checkpoint" else [])
        response = client.get(reverse(name, args=args))
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == b"weights"
        assert "attachment" in response["Content-Disposition"]


def test_best_checkpoint_is_404_with_a_reason_before_any_candidate_finishes(client, alice, alice_search):
    client.force_login(alice)
    response = client.get(reverse("best_checkpoint", args=[alice_search.id]))
    assert response.status_code == 404


def test_search_list_shows_progress_and_an_empty_state(client, alice, alice_search, finished_candidate):
    client.force_login(alice)
    html = client.get(reverse("search_list")).content.decode()
    assert "alice&#x27;s" in html and "1 / 2" in html and "0.9" not in html  # best val acc is unset
    Search.objects.all().delete()
    assert "No searches yet" in client.get(reverse("search_list")).content.decode()


def test_the_form_creates_a_search_and_redirects_to_it(client, alice):
    client.force_login(alice)
    response = client.post(reverse("search_new"), VALID)
    search = Search.objects.get()
    assert response.status_code == 302 and response.url == search.url
    assert (search.owner, search.max_candidates, search.epochs, search.parallel) == (alice, 6, 3, 2)
    assert search.train_settings == {"batch_size": 64, "lr": 0.003}


@pytest.mark.parametrize("field,value,message", [
    ("max_candidates", "0", "greater than or equal to 1"),
    ("epochs", "abc", "Enter a whole number"),
    ("parallel", "7", "more candidates at once than the search has"),
    ("dataset", "cifar10", "unavailable"),
    ("space", "nope", "Select a valid choice"),
    ("name", "", "This field is required"),
    ("lr", "-1", "greater than or equal to"),
])
def test_the_form_refuses_bad_values_inline(client, alice, field, value, message):
    client.force_login(alice)
    response = client.post(reverse("search_new"), dict(VALID, **{field: value}))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Search.objects.exists()


def test_the_form_shows_unavailable_data_sets_with_the_reason(client, alice):
    client.force_login(alice)
    html = client.get(reverse("search_new")).content.decode()
    assert "CIFAR-10" in html and "unavailable: not found under" in html


def test_cancel_by_owner_ends_the_search(client, alice, alice_search):
    client.force_login(alice)
    response = client.post(reverse("search_cancel", args=[alice_search.id]))
    assert response.status_code == 302
    alice_search.refresh_from_db()
    assert alice_search.state == Search.State.CANCELLED


def test_forms_need_a_csrf_token(alice):
    from django.test import Client
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(reverse("search_new"), VALID).status_code == 403
