"""What the local SageMaker knows: models, endpoint configs, endpoints, training jobs, and their lifecycle.

Everything lives in memory, behind one lock (``persistence.py`` keeps it across
a restart). Each endpoint has one lifecycle thread: it starts the instances,
waits for their health checks, then watches them while the endpoint is in
service. As in SageMaker, an instance that dies in service is replaced: the
endpoint stays InService while a new instance starts and passes its health
check in its place; only when ``MAX_FAILED_STARTS`` instances in a row fail to
come up in one place does the endpoint fail. Every status change puts a "SageMaker
Endpoint State Change" event on the default EventBridge bus, in the shape AWS
sends it. Training jobs (``training.py``) run beside the endpoints, with a lock
of their own, and put "SageMaker Training Job State Change" events on the same
bus through the same publisher.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import botocore.session

from infra.local.sagemaker.common import (
    ApiError,
    EventPublisher,
    Settings,
    epoch_millis,
    validation_error,
    without_local_paths,
)
from infra.local.sagemaker.instances import (
    Instance,
    exit_cause,
    exit_reason,
    health_check_reason,
    instance_label,
    start_instance,
    stop_instances,
    wait_until_healthy,
)
from infra.local.sagemaker.log_shipping import LogShipper, endpoint_log_group
from infra.local.sagemaker.training import TrainingJobs

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.5
# Instances in a row that may fail to come up in one place (exit before /ping answers, or
# no 200 within the startup timeout) before the endpoint is Failed.
MAX_FAILED_STARTS = 3
STATE_CHANGE_DETAIL_TYPE = "SageMaker Endpoint State Change"


@functools.cache
def hosting_instance_types() -> frozenset[str]:
    """The instance types SageMaker hosting accepts, as botocore's service model lists them."""
    model = botocore.session.get_session().get_service_model("sagemaker")
    return frozenset(model.shape_for("ProductionVariantInstanceType").enum)


@dataclass
class Model:
    name: str
    arn: str
    creation_time: float
    spec: dict[str, Any]  # the CreateModel request, less name and tags

    def container(self) -> dict[str, Any]:
        return self.spec.get("PrimaryContainer") or self.spec["Containers"][0]


@dataclass
class EndpointConfig:
    name: str
    arn: str
    creation_time: float
    spec: dict[str, Any]  # the CreateEndpointConfig request, less name and tags


@dataclass(frozen=True)
class Variant:
    """A production variant as deployed: what it runs is copied from its model at CreateEndpoint."""

    name: str
    model_name: str
    instance_type: str
    instance_count: int
    weight: float
    image: str | None
    environment: dict[str, str]


@dataclass
class Endpoint:
    """A deployed endpoint.

    ``instances`` (each with its ``url``) and ``async_inference_config`` are
    what the runtime plane (InvokeEndpointAsync) serves requests from.
    """

    name: str
    arn: str
    config_name: str
    variants: list[Variant]
    async_inference_config: dict[str, Any] | None
    tags: dict[str, str]
    creation_time: float
    last_modified_time: float
    status: str = "Creating"
    failure_reason: str | None = None
    instances: list[Instance] = field(default_factory=list)  # in place now: serving, or starting in place of one
    cancelled: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def instance_count(self) -> int:
        return sum(variant.instance_count for variant in self.variants)

    @property
    def log_dir_name(self) -> str:
        """The folder of its instances' logs, in the workdir: one per endpoint ever created."""
        return f"{self.name}-{int(self.creation_time * 1000)}"

    def variant(self, name: str) -> Variant:
        return next(variant for variant in self.variants if variant.name == name)


@dataclass
class Place:
    """Where an instance of a variant belongs, while instances are started there until one passes its health check."""

    variant: Variant
    index: int
    instance: Instance | None = None
    deadline: float = 0.0  # for the instance starting now to answer /ping
    failures: list[str] = field(default_factory=list)  # why the instances started here in a row were no good

    @property
    def label(self) -> str:
        return instance_label(self.variant.name, self.index)


def event_status(status: str) -> str:
    """EndpointStatus as state-change events spell it: InService -> IN_SERVICE."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", status).upper()


class LocalSageMaker:
    """The control plane's state and the endpoints' lifecycle."""

    def __init__(self, settings: Settings, events: EventPublisher, logs: LogShipper | None = None) -> None:
        self.settings = settings
        self._events = events
        self.lock = threading.RLock()
        self._models: dict[str, Model] = {}
        self._configs: dict[str, EndpointConfig] = {}
        self._endpoints: dict[str, Endpoint] = {}
        self._status_listeners: list[Callable[[Endpoint], None]] = []
        self._instance_listeners: list[Callable[[Endpoint, Instance, bool], None]] = []
        # Containers' output goes to CloudWatch Logs as SageMaker sends it (log_shipping.py).
        self.logs = logs
        self.training = TrainingJobs(settings, events, self.arn, logs)

    def add_status_listener(self, listener: Callable[[Endpoint], None]) -> None:
        """Call ``listener(endpoint)`` after every status change, under the lock: it must not block."""
        self._status_listeners.append(listener)

    def add_instance_listener(self, listener: Callable[[Endpoint, Instance, bool], None]) -> None:
        """Call ``listener(endpoint, instance, serving)`` under the lock when an instance of an endpoint in
        service starts serving (it passed its health check in place of another) or stops (it died).
        It must not block."""
        self._instance_listeners.append(listener)

    def arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.settings.region}:{self.settings.account}:{kind}/{name.lower()}"

    # Models

    def create_model(self, name: str, spec: dict[str, Any]) -> Model:
        with self.lock:
            if name.lower() in self._models:
                raise validation_error(f'Cannot create already existing model "{self.arn("model", name)}".')
            model = Model(name=name, arn=self.arn("model", name), creation_time=time.time(), spec=spec)
            self._models[name.lower()] = model
            return model

    def model(self, name: str) -> Model:
        with self.lock:
            model = self._models.get(name.lower())
        if model is None:
            raise validation_error(f'Could not find model "{self.arn("model", name)}".')
        return model

    def models(self) -> list[Model]:
        with self.lock:
            return list(self._models.values())

    def delete_model(self, name: str) -> None:
        # Endpoints keep what they copied from the model, so SageMaker lets it go while in use.
        with self.lock:
            self.model(name)
            del self._models[name.lower()]

    # Endpoint configs

    def create_endpoint_config(self, name: str, spec: dict[str, Any]) -> EndpointConfig:
        with self.lock:
            if name.lower() in self._configs:
                arn = self.arn("endpoint-config", name)
                raise validation_error(f'Cannot create already existing endpoint configuration "{arn}".')
            for variant in spec["ProductionVariants"]:
                self._check_variant(variant)
            config = EndpointConfig(
                name=name, arn=self.arn("endpoint-config", name), creation_time=time.time(), spec=spec
            )
            self._configs[name.lower()] = config
            return config

    def _check_variant(self, variant: dict[str, Any]) -> None:
        self.model(variant["ModelName"])
        instance_type = variant.get("InstanceType")
        if instance_type is None or "ServerlessConfig" in variant:
            raise validation_error(
                f"Production variant {variant['VariantName']}: the local SageMaker hosts instance-based "
                "variants only; give InstanceType and InitialInstanceCount."
            )
        if instance_type not in hosting_instance_types():
            raise validation_error(
                f"1 validation error detected: Value '{instance_type}' at 'productionVariants.member.instanceType' "
                "failed to satisfy constraint: Member must satisfy enum value set of SageMaker hosting instance types"
            )
        if variant.get("InitialInstanceCount", 0) < 1:
            raise validation_error(
                f"Production variant {variant['VariantName']}: InitialInstanceCount must be at least 1."
            )

    def endpoint_config(self, name: str) -> EndpointConfig:
        with self.lock:
            config = self._configs.get(name.lower())
        if config is None:
            arn = self.arn("endpoint-config", name)
            raise validation_error(f'Could not find endpoint configuration "{arn}".')
        return config

    def endpoint_configs(self) -> list[EndpointConfig]:
        with self.lock:
            return list(self._configs.values())

    def delete_endpoint_config(self, name: str) -> None:
        # An endpoint keeps running on a deleted config, as in SageMaker.
        with self.lock:
            self.endpoint_config(name)
            del self._configs[name.lower()]

    # Endpoints

    def create_endpoint(self, name: str, config_name: str, tags: dict[str, str]) -> Endpoint:
        with self.lock:
            if name.lower() in self._endpoints:
                raise validation_error(f'Cannot create already existing endpoint "{self.arn("endpoint", name)}".')
            config = self.endpoint_config(config_name)
            variants = [self._deployed_variant(variant) for variant in config.spec["ProductionVariants"]]
            self._check_quota(variants)
            now = time.time()
            endpoint = Endpoint(
                name=name,
                arn=self.arn("endpoint", name),
                config_name=config.name,
                variants=variants,
                async_inference_config=config.spec.get("AsyncInferenceConfig"),
                tags=tags,
                creation_time=now,
                last_modified_time=now,
            )
            self._endpoints[name.lower()] = endpoint
            log.info("endpoint %s is Creating", name)
            self._publish_state_change(endpoint)
            endpoint.thread = threading.Thread(target=self._run, args=(endpoint,), name=f"endpoint-{name}", daemon=True)
            endpoint.thread.start()
            return endpoint

    def _deployed_variant(self, variant: dict[str, Any]) -> Variant:
        container = self.model(variant["ModelName"]).container()
        return Variant(
            name=variant["VariantName"],
            model_name=variant["ModelName"],
            instance_type=variant["InstanceType"],
            instance_count=variant["InitialInstanceCount"],
            weight=float(variant.get("InitialVariantWeight", 1.0)),
            image=container.get("Image"),
            environment=dict(container.get("Environment") or {}),
        )

    def _check_quota(self, variants: list[Variant]) -> None:
        # Like the account quota for endpoint instances: every endpoint that holds instances counts.
        in_use = sum(e.instance_count for e in self._endpoints.values() if e.status != "Failed")
        requested = sum(variant.instance_count for variant in variants)
        limit = self.settings.max_instances
        if in_use + requested > limit:
            raise ApiError(
                "ResourceLimitExceeded",
                f"The account-level service limit 'endpoint instances' is {limit} Instances, with current "
                f"utilization of {in_use} Instances and a request delta of {requested} Instances. "
                "Please raise LOCAL_SAGEMAKER_MAX_INSTANCES to increase this quota.",
            )

    def endpoint(self, name: str) -> Endpoint:
        with self.lock:
            endpoint = self._endpoints.get(name.lower())
        if endpoint is None:
            raise validation_error(f'Could not find endpoint "{self.arn("endpoint", name)}".')
        return endpoint

    def endpoints(self) -> list[Endpoint]:
        with self.lock:
            return list(self._endpoints.values())

    def delete_endpoint(self, name: str) -> None:
        with self.lock:
            endpoint = self.endpoint(name)
            if endpoint.status == "Deleting":
                return
            self._set_status(endpoint, "Deleting")
            endpoint.cancelled.set()
        threading.Thread(target=self._remove, args=(endpoint,), name=f"delete-{name}", daemon=True).start()

    def _remove(self, endpoint: Endpoint) -> None:
        self._stop(endpoint)
        with self.lock:
            if self._endpoints.get(endpoint.name.lower()) is endpoint:
                del self._endpoints[endpoint.name.lower()]

    def shutdown(self, keep: bool = False) -> None:
        """Stop every instance and every running training job; called when the server stops.

        With ``keep`` the training jobs end nowhere: they stay as they are, to be saved
        and ended when the server starts again (``persistence.py``).
        """
        with self.lock:
            endpoints = list(self._endpoints.values())
        for endpoint in endpoints:
            endpoint.cancelled.set()
        self.training.stop_all(keep)
        for endpoint in endpoints:
            if endpoint.thread is not None:
                endpoint.thread.join()  # no instance is started after this
        # All at once: the supervisor gives the whole server a few seconds to stop.
        instances = [instance for endpoint in endpoints for instance in endpoint.instances]
        stop_instances(instances, self.settings.stop_grace_s)
        self.training.join()  # before the publisher closes, so their events go out
        self._events.close()
        if self.logs is not None:
            self.logs.close()  # the containers' last lines

    # Restoring what a previous server kept (persistence.py)

    def restore(self, models: list[Model], configs: list[EndpointConfig], endpoints: list[Endpoint]) -> None:
        """Put back what the server knew when it stopped, and bring the endpoints back up."""
        with self.lock:
            self._models.update((model.name.lower(), model) for model in models)
            self._configs.update((config.name.lower(), config) for config in configs)
            for endpoint in endpoints:
                self._restore_endpoint(endpoint)

    def _restore_endpoint(self, endpoint: Endpoint) -> None:
        if endpoint.status == "Deleting":
            return  # the delete had begun: it ends here
        self._endpoints[endpoint.name.lower()] = endpoint
        if endpoint.status == "InService":
            # SageMaker does not stop an endpoint when this machine stops: for those who use it,
            # it stayed InService all along. So it comes back InService, without a state-change
            # event, and takes invocations at once; they wait in its queue while its instances
            # start and pass their health checks, as when SageMaker replaces an instance.
            log.info("endpoint %s is back in service; starting its instances", endpoint.name)
            self._notify_status_listeners(endpoint)
            run: Callable[[Endpoint], None] = self._run_restored
        elif endpoint.status == "Creating":
            log.info("endpoint %s is Creating again", endpoint.name)
            run = self._run
        else:
            return  # Failed: kept as it is, for DescribeEndpoint and DeleteEndpoint
        endpoint.thread = threading.Thread(target=run, args=(endpoint,), name=f"endpoint-{endpoint.name}", daemon=True)
        endpoint.thread.start()

    # Lifecycle (one thread per endpoint)

    def _run(self, endpoint: Endpoint) -> None:
        reason = self._deploy(endpoint)
        if reason is None and self._transition(endpoint, "InService", expected=("Creating",)):
            reason = self._keep_in_service(endpoint, [])
        self._fail(endpoint, reason)

    def _run_restored(self, endpoint: Endpoint) -> None:
        places = [Place(variant, index) for variant in endpoint.variants for index in range(variant.instance_count)]
        self._fail(endpoint, self._keep_in_service(endpoint, places))

    def _fail(self, endpoint: Endpoint, reason: str | None) -> None:
        if reason is not None and self._transition(
            endpoint, "Failed", expected=("Creating", "InService"), reason=reason
        ):
            stop_instances(endpoint.instances, self.settings.stop_grace_s)

    def _deploy(self, endpoint: Endpoint) -> str | None:
        for variant in endpoint.variants:
            for index in range(variant.instance_count):
                if endpoint.cancelled.is_set():
                    return None
                try:
                    instance = self._start_instance(endpoint, variant, index, first=True)
                except OSError as error:
                    return self._start_failure(endpoint, instance_label(variant.name, index), error)
                with self.lock:
                    endpoint.instances.append(instance)
        return wait_until_healthy(endpoint.instances, self.settings.startup_timeout_s, endpoint.cancelled)

    def _start_instance(self, endpoint: Endpoint, variant: Variant, index: int, first: bool) -> Instance:
        # An instance started in place of another logs to a file of its own, so that the end of
        # its log tells about it and not about the one before.
        suffix = "" if first else f"-{int(time.time() * 1000)}"
        log_path = self.settings.workdir / endpoint.log_dir_name / f"{variant.name}-{index + 1}{suffix}.log"
        instance = start_instance(self.settings.runtime_command, variant.environment, variant.name, index, log_path)
        log.info("endpoint %s: started %s, its log in %s", endpoint.name, instance.label, log_path)
        if self.logs is not None:
            stream = f"{variant.name}/i-{uuid.uuid4().hex[:17]}"  # SageMaker names a stream by its instance
            process = instance.process
            self.logs.follow(log_path, endpoint_log_group(endpoint.name), stream, lambda: process.poll() is not None)
        return instance

    def _start_failure(self, endpoint: Endpoint, label: str, error: OSError) -> str:
        command = self.settings.runtime_command
        log.error("endpoint %s: could not start %s (%s): %s", endpoint.name, label, command, error)
        return f"Could not start the primary container for {label}: {without_local_paths(str(error))}"

    def _keep_in_service(self, endpoint: Endpoint, places: list[Place]) -> str | None:
        """Put a new instance in each place whose instance died, until the endpoint is deleted or the server stops.

        ``places`` are those to fill from the start. Returns why the endpoint fails, or None.
        """
        while not endpoint.cancelled.is_set():
            places += self._places_of_dead_instances(endpoint)
            for place in list(places):
                if self._fill(endpoint, place):
                    places.remove(place)
                elif len(place.failures) >= MAX_FAILED_STARTS:
                    return (
                        f"Could not bring {place.label} back into service: {MAX_FAILED_STARTS} instances "
                        f"in a row started in its place failed. The last: {place.failures[-1]}"
                    )
            endpoint.cancelled.wait(WATCH_INTERVAL_S)
        return None

    def _places_of_dead_instances(self, endpoint: Endpoint) -> list[Place]:
        """Take every serving instance that died out of service; answers the places to fill."""
        places = []
        with self.lock:
            for instance in list(endpoint.instances):
                code = instance.exit_code()
                if not instance.healthy or code is None:
                    continue  # a starting instance is its place's business
                endpoint.instances.remove(instance)
                self._notify_instance_listeners(endpoint, instance, serving=False)
                log.warning(
                    "endpoint %s: the primary container for %s %s while in service (its log: %s); "
                    "starting a new instance in its place",
                    endpoint.name,
                    instance.label,
                    exit_cause(code),
                    instance.log_path,
                )
                places.append(Place(endpoint.variant(instance.variant_name), instance.index))
        return places

    def _fill(self, endpoint: Endpoint, place: Place) -> bool:
        """One step in filling a place: start an instance, or see how the one starting does. True once it serves."""
        instance = place.instance
        if instance is None:
            try:
                instance = self._start_instance(endpoint, place.variant, place.index, first=False)
            except OSError as error:
                place.failures.append(self._start_failure(endpoint, place.label, error))
                return False
            place.instance, place.deadline = instance, time.monotonic() + self.settings.startup_timeout_s
            with self.lock:
                endpoint.instances.append(instance)
        elif (code := instance.exit_code()) is not None:
            self._discard(endpoint, place, exit_reason(instance, code, "before it answered /ping"))
        elif instance.ping():
            with self.lock:
                instance.healthy = True
                self._notify_instance_listeners(endpoint, instance, serving=True)
            log.info("endpoint %s: %s passed its health check and serves", endpoint.name, instance.label)
            return True
        elif time.monotonic() > place.deadline:
            self._discard(endpoint, place, health_check_reason(instance, self.settings.startup_timeout_s))
        return False

    def _discard(self, endpoint: Endpoint, place: Place, reason: str) -> None:
        """Stop an instance that did not come up, and count it against its place."""
        assert place.instance is not None
        log.warning("endpoint %s: %s (its log: %s)", endpoint.name, reason, place.instance.log_path)
        stop_instances([place.instance], self.settings.stop_grace_s)
        with self.lock:
            endpoint.instances.remove(place.instance)
        place.instance = None
        place.failures.append(reason)

    def _stop(self, endpoint: Endpoint) -> None:
        # The lifecycle thread starts instances; wait for it so none is started after this.
        if endpoint.thread is not None:
            endpoint.thread.join()
        stop_instances(endpoint.instances, self.settings.stop_grace_s)

    def _transition(
        self, endpoint: Endpoint, status: str, expected: tuple[str, ...], reason: str | None = None
    ) -> bool:
        """Move to ``status`` unless something else (a delete, a shutdown) moved the endpoint first."""
        with self.lock:
            if endpoint.status not in expected or endpoint.cancelled.is_set():
                return False
            self._set_status(endpoint, status, reason)
            return True

    def _set_status(self, endpoint: Endpoint, status: str, reason: str | None = None) -> None:
        endpoint.status = status
        endpoint.failure_reason = reason
        endpoint.last_modified_time = time.time()
        log.info("endpoint %s is %s%s", endpoint.name, status, f": {reason}" if reason else "")
        self._publish_state_change(endpoint)
        self._notify_status_listeners(endpoint)

    def _notify_status_listeners(self, endpoint: Endpoint) -> None:
        for listener in self._status_listeners:
            try:
                listener(endpoint)
            except Exception:
                log.exception("a listener failed on endpoint %s becoming %s", endpoint.name, endpoint.status)

    def _notify_instance_listeners(self, endpoint: Endpoint, instance: Instance, serving: bool) -> None:
        for listener in self._instance_listeners:
            try:
                listener(endpoint, instance, serving)
            except Exception:
                log.exception("a listener failed on %s of endpoint %s", instance.label, endpoint.name)

    def _publish_state_change(self, endpoint: Endpoint) -> None:
        detail: dict[str, Any] = {
            "EndpointName": endpoint.name,
            "EndpointArn": endpoint.arn,
            "EndpointConfigName": endpoint.config_name,
            "ProductionVariants": [
                {
                    "VariantName": variant.name,
                    "DesiredWeight": variant.weight,
                    "DesiredInstanceCount": float(variant.instance_count),
                }
                for variant in endpoint.variants
            ],
            "EndpointStatus": event_status(endpoint.status),
            "CreationTime": epoch_millis(endpoint.creation_time),
            "LastModifiedTime": epoch_millis(endpoint.last_modified_time),
            "Tags": dict(endpoint.tags),
        }
        if endpoint.failure_reason:
            detail["FailureReason"] = endpoint.failure_reason
        self._events.publish(
            {
                "Source": "aws.sagemaker",
                "DetailType": STATE_CHANGE_DETAIL_TYPE,
                "Detail": json.dumps(detail),
                "Resources": [endpoint.arn],
                "Time": datetime.fromtimestamp(endpoint.last_modified_time, UTC),
            }
        )
