"""The SDK over a mocked transport: error mapping, the upload flow, and part retries."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from sdmw_cli.client import ApiError, AuthError, Client, LocalFile, UnreachableError, files_to_upload, parts_of

URL = "http://api.test/prod"


def client_over(handler, storage_handler=None) -> Client:
    storage = httpx.Client(transport=httpx.MockTransport(storage_handler or handler))
    return Client(
        URL, "key", http=httpx.Client(transport=httpx.MockTransport(handler)), storage=storage, retry_pause_s=0
    )


@pytest.mark.parametrize("status", [401, 403])
def test_a_wrong_key_is_an_auth_error(status):
    client = client_over(lambda request: httpx.Response(status, json={"message": "Forbidden"}))
    with pytest.raises(AuthError, match="Forbidden"):
        client.list_checkpoints()


def test_other_refusals_carry_the_servers_message():
    client = client_over(lambda request: httpx.Response(409, json={"detail": "endpoint e already exists"}))
    with pytest.raises(ApiError) as raised:
        client.deploy_endpoint("ml.g5.xlarge", 1, "e")
    assert raised.value.status_code == 409 and raised.value.message == "endpoint e already exists"


def test_a_connection_error_is_unreachable():
    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(UnreachableError, match="cannot reach"):
        client_over(refuse).list_endpoints()


def test_every_request_carries_the_key_under_the_stage():
    seen = []

    def record(request):
        seen.append(request)
        return httpx.Response(200, json={"checkpoints": []})

    client_over(record).list_checkpoints()
    assert str(seen[0].url) == URL + "/checkpoints" and seen[0].headers["x-api-key"] == "key"


def test_lists_follow_every_page_to_the_end():
    pages = {None: (["a", "b"], "t1"), "t1": (["c", "d"], "t2"), "t2": (["e"], None)}

    def paged(request):
        token = request.url.params.get("next_token")
        items, following = pages[token]
        headers = {"x-next-token": following} if following else {}
        if request.url.path.endswith("/checkpoints"):
            body = {"statusCode": 200, "checkpoints": [{"id": i} for i in items], "next_token": following}
            return httpx.Response(200, json=body, headers=headers)
        return httpx.Response(200, json=[{"InferenceJobId": i} for i in items], headers=headers)

    client = client_over(paged)
    listed = client.list_checkpoints()
    assert [c["id"] for c in listed["checkpoints"]] == list("abcde") and "next_token" not in listed
    assert [j["InferenceJobId"] for j in client.list_inference_jobs()] == list("abcde")
    assert client.checkpoint("e") == {"id": "e"}  # found past the first page


def test_parts_round_up_and_an_empty_file_has_one():
    assert (parts_of(0, 10), parts_of(10, 10), parts_of(11, 10)) == (1, 1, 2)


def test_a_folder_uploads_every_file_by_its_relative_name(tmp_path):
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "model.bin").write_bytes(b"u")
    (tmp_path / "model_index.json").write_text("{}")
    assert [f.name for f in files_to_upload(tmp_path)] == ["model_index.json", "unet/model.bin"]


def upload_api(puts: list[httpx.Request], failures: dict[str, int]):
    """The API and S3 in one handler: part URLs fail ``failures[url]`` times before taking the part."""
    bodies = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "s3.test":
            puts.append(request)
            url = str(request.url)
            if failures.get(url, 0) > 0:
                failures[url] -= 1
                return httpx.Response(500, text="SlowDown")
            return httpx.Response(200, headers={"ETag": f'"etag-{request.url.params["partNumber"]}"'})
        body = json.loads(request.content)
        bodies.append(body)
        if request.method == "POST":
            urls = [f"https://s3.test/k?partNumber={n}" for n in (1, 2)]
            return httpx.Response(200, json={"checkpoint": {"id": "ck-1"}, "s3PresignUrl": {"m.bin": urls}})
        return httpx.Response(200, json={"checkpoint": {"id": "ck-1", "status": "Active"}})

    return handle, bodies


def test_upload_creates_puts_every_part_and_activates_with_the_etags(tmp_path):
    model = tmp_path / "m.bin"
    model.write_bytes(b"x" * 15)
    puts: list[httpx.Request] = []
    handle, bodies = upload_api(puts, {"https://s3.test/k?partNumber=2": 2})
    sent = []
    answer = client_over(handle).upload_checkpoint(
        [LocalFile("m.bin", model)], "Lora", part_size=10, on_bytes=sent.append
    )
    assert answer["checkpoint"]["status"] == "Active"
    assert bodies[0]["filenames"] == [{"filename": "m.bin", "parts_number": 2}]
    assert bodies[1] == {
        "checkpoint_id": "ck-1",
        "status": "Active",
        "multi_parts_tags": {"m.bin": [{"ETag": '"etag-1"', "PartNumber": 1}, {"ETag": '"etag-2"', "PartNumber": 2}]},
    }
    assert len(puts) == 4  # part 2 failed twice, then went through
    assert sorted(sent) == [5, 10]
    assert all("x-api-key" not in p.headers for p in puts)  # the key never goes to S3


def test_a_part_failing_three_times_fails_the_upload(tmp_path):
    model = tmp_path / "m.bin"
    model.write_bytes(b"x" * 15)
    puts: list[httpx.Request] = []
    handle, bodies = upload_api(puts, {"https://s3.test/k?partNumber=1": 3})
    with pytest.raises(ApiError, match="SlowDown"):
        client_over(handle).upload_checkpoint([LocalFile("m.bin", model)], "Lora", part_size=10)
    assert len(bodies) == 1  # never activated


def test_an_answer_that_is_not_json_is_an_api_error_naming_the_url():
    client = client_over(lambda request: httpx.Response(200, text="<html>a web page</html>"))
    with pytest.raises(ApiError, match=re.escape("not JSON: is http://api.test/prod the API's URL?")):
        client.list_checkpoints()


@pytest.mark.parametrize("url", ["api.test/prod", "ftp://api.test/prod", "http://"])
def test_a_url_that_cannot_be_used_is_unreachable(url):
    with pytest.raises(UnreachableError):
        Client(url, "key").list_checkpoints()


def test_a_creating_request_without_an_answer_is_sent_again_under_the_same_idempotency_key():
    """The connection dropped after the API had the request: the retry must not create a second job."""
    seen = []

    def drop_the_first(request):
        seen.append(request)
        if len(seen) == 1:
            raise httpx.ReadError("connection reset", request=request)
        if len(seen) == 2:
            return httpx.Response(503, json={"statusCode": 503, "error": "the request was not accepted, try again"})
        return httpx.Response(200, json={"id": "job-1"})

    client_over(drop_the_first).deploy_endpoint("ml.g5.xlarge", 1, "e")
    keys = {request.headers["idempotency-key"] for request in seen}
    assert len(seen) == 3 and len(keys) == 1 and keys != {""}


def test_each_call_has_a_key_of_its_own_and_reads_have_none():
    seen = []

    def record(request):
        seen.append(request)
        return httpx.Response(200, json={"id": "job", "checkpoints": []})

    client = client_over(record)
    client.deploy_endpoint("ml.g5.xlarge", 1, "a")
    client.deploy_endpoint("ml.g5.xlarge", 1, "b")
    client.list_checkpoints()
    assert seen[0].headers["idempotency-key"] != seen[1].headers["idempotency-key"]
    assert "idempotency-key" not in seen[2].headers


def test_a_refusal_is_not_sent_again():
    seen = []

    def refuse(request):
        seen.append(request)
        return httpx.Response(422, json={"detail": "width: must be a multiple of 8"})

    with pytest.raises(ApiError):
        client_over(refuse).deploy_endpoint("ml.g5.xlarge", 1, "e")
    assert len(seen) == 1
