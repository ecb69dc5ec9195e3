from pathlib import Path

import pytest
from helpers import ROOT, tiny_job, write_job

from es_mpi.envs.make import check_env_id
from es_mpi.runs.job import ConfigError, Job, load_job


def error_of(tmp_path: Path, text: str, overrides=()) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_job(path, list(overrides))
    message = str(info.value)
    assert "\n" not in message and str(path) in message or "--set" in message
    return message


def test_every_shipped_job_validates():
    jobs = sorted((ROOT / "jobs").glob("*.yaml"))
    assert jobs
    for path in jobs:
        job = load_job(path)
        check_env_id(job.env.id, str(path))


def test_defaults_fill_missing_sections(tmp_path):
    job = load_job(write_job(tmp_path / "j.yaml", {"env": {"id": "Hopper-v5"}}))
    assert isinstance(job, Job) and job.es.sigma == 0.02 and job.optimizer.kind == "adam"


def test_unknown_key_suggests_the_closest(tmp_path):
    msg = error_of(tmp_path, "env: {id: Hopper-v5}\nes: {sigam: 0.1}\n")
    assert "es.sigam" in msg and "es.sigma" in msg


@pytest.mark.parametrize(
    "section, value, words",
    [
        ("es: {sigma: -0.1}", "es.sigma", "> 0"),
        ("es: {sigma: 0}", "es.sigma", "> 0"),
        ("es: {pairs: 0}", "es.pairs", "> 0"),
        ("es: {pairs: 2.5}", "es.pairs", "integer"),
        ("es: {pairs: true}", "es.pairs", "integer"),
        ("run: {generations: -3}", "run.generations", "> 0"),
        ("run: {timesteps: 0}", "run.timesteps", ">= 1"),
        ("policy: {hidden: [64, 0]}", "policy.hidden", ">= 1"),
        ("policy: {hidden: 64}", "policy.hidden", "list"),
        ("policy: {activation: sigmoid}", "policy.activation", "one of"),
        ("policy: {actions: 'uniform:1'}", "policy.actions", "uniform:N"),
        ("optimizer: {kind: rmsprop}", "optimizer.kind", "one of"),
        ("env: {id: Hopper-v5, episode_cap: sometimes}", "env.episode_cap", "one of"),
        ("es: sigma", "es", "mapping"),
    ],
)
def test_bad_values_name_the_key(tmp_path, section, value, words):
    text = section if section.startswith("env:") else "env: {id: Hopper-v5}\n" + section
    msg = error_of(tmp_path, text)
    assert value in msg and words in msg


def test_yaml_syntax_error_gives_the_line(tmp_path):
    msg = error_of(tmp_path, "env: {id: Hopper-v5}\nes:\n  sigma: [0.1\n")
    assert "line" in msg and "invalid YAML" in msg


def test_python_object_tags_are_refused(tmp_path):
    msg = error_of(tmp_path, "env: !!python/object/apply:os.system ['echo pwned']\n")
    assert "invalid YAML" in msg


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_job(tmp_path / "nope.yaml")


def test_set_overrides_parse_values_as_yaml(tmp_path):
    path = write_job(tmp_path / "j.yaml", tiny_job())
    job = load_job(path, ["es.sigma=0.5", "policy.hidden=[4, 4, 4]", "run.timesteps=null"])
    assert job.es.sigma == 0.5 and job.policy.hidden == [4, 4, 4] and job.run.timesteps is None


@pytest.mark.parametrize("override, words", [("es.sigma", "KEY=VALUE"), ("es.sigam=1", "es.sigam"),
                                             ("es.sigma=abc", "es.sigma"), ("es.sigma.x=1", "section")])
def test_bad_set_is_a_config_error(tmp_path, override, words):
    path = write_job(tmp_path / "j.yaml", tiny_job())
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        load_job(path, [override])


def test_unknown_env_id_lists_close_matches():
    with pytest.raises(ConfigError, match="Hopper-v5"):
        check_env_id("Hoper-v5", "x.yaml")


def test_digest_ignores_budget_keys_only(tmp_path):
    base = load_job(write_job(tmp_path / "a.yaml", tiny_job()))
    longer = load_job(write_job(tmp_path / "b.yaml", tiny_job(run={"generations": 99, "timesteps": 5000})))
    other = load_job(write_job(tmp_path / "c.yaml", tiny_job(es={"sigma": 0.3})))
    assert base.digest() == longer.digest() != other.digest()
