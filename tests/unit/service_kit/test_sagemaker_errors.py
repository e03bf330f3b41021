"""How SageMaker's error answers are read: one predicate for "not found", one for "already exists"."""

import pytest
from botocore.exceptions import ClientError

from service_kit.sagemaker import already_exists, describe_error, is_not_found


def error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "Operation")


@pytest.mark.parametrize(
    "answer",
    [
        error("ValidationException", 'Could not find endpoint "arn:aws:sagemaker:us-east-1:1:endpoint/e".'),
        error("ValidationException", 'Could not find model "arn:aws:sagemaker:us-east-1:1:model/m".'),
        error("ValidationException", "Requested resource not found."),
        error("ObjectNotFoundException", "No scalable target registered"),
        error("ResourceNotFound", "Alarm a does not exist"),
    ],
)
def test_each_way_aws_says_a_resource_is_missing_is_not_found(answer):
    assert is_not_found(answer)


@pytest.mark.parametrize(
    "answer",
    [
        error("ValidationException", "Cannot create already existing model"),
        error("ValidationException", "1 validation error detected: Value 'x' at 'instanceType' failed"),
        error("AccessDeniedException", "not authorized: resource not found in policy"),
        error("ThrottlingException", "Rate exceeded"),
        error("ResourceLimitExceeded", "account-level service limit"),
    ],
)
def test_other_errors_are_not_not_found(answer):
    assert not is_not_found(answer)


def test_already_exists_is_a_duplicate_create_only():
    assert already_exists(error("ValidationException", 'Cannot create already existing model "arn:m".'))
    assert already_exists(error("ResourceInUse", "Training job names must be unique within an AWS account."))
    assert not already_exists(error("ValidationException", "Could not find model"))


def test_an_error_is_described_by_its_code_and_message():
    assert describe_error(error("ResourceLimitExceeded", "no more")) == "ResourceLimitExceeded: no more"
