"""The clients file: both formats, one schema, errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegate_server.clients import ClientsFileError, Policy, load_registry, tokens
from imagegate_server.models import MODEL_RULES, Operation

REPO = Path(__file__).resolve().parents[2]
SHA = "ab" * 32


def write(tmp_path: Path, text: str, name: str = "clients.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path: Path) -> ClientsFileError:
    with pytest.raises(ClientsFileError) as caught:
        load_registry(path)
    return caught.value


def test_the_documented_examples_load_and_say_the_same_in_toml_and_yaml() -> None:
    toml = load_registry(REPO / "docs" / "clients.example.toml")
    yaml = load_registry(REPO / "docs" / "clients.example.yaml")
    assert dict(toml.clients) == dict(yaml.clients)
    renderer = toml.clients["renderer"]
    assert renderer.policy == Policy(
        requests_per_minute=60,  # inherited
        images_per_minute=60,  # own
        max_concurrent=4,
        max_n=4,
        models=("gpt-image-2", "gpt-image-2-*", "gpt-image-1.5"),
        operations=frozenset({Operation.GENERATION, Operation.EDIT}),
        daily_budget_micro_usd=100_000_000,
        monthly_budget_micro_usd=500_000_000,
        stamp_identity=True,
    )
    assert [t.token_id for t in renderer.tokens] == ["Rk8aZ3qP", "b7TqW2mX"]
    assert renderer.tokens[1].expires is not None
    batch = toml.clients["nightly-batch"]
    assert batch.policy.requests_per_minute is None  # "unlimited" beats the default
    assert batch.policy.daily_budget_micro_usd is None
    assert batch.policy.monthly_budget_micro_usd == 1_200_500_000
    assert batch.policy.stamp_identity is False
    assert toml.by_identity("spiffe://example.org/ns/team-a/sa/renderer") is renderer
    assert toml.by_identity("BATCH.jobs.svc.cluster.local") is batch  # DNS: any case


# Every model the table knows, and names OpenAI may ship next: a later snapshot of
# gpt-image-2, and other families whose names start the same way.
CANDIDATE_MODELS = sorted(
    {
        *MODEL_RULES,
        "gpt-image-2-2027-01-01",
        "gpt-image-2.7-sunburst",
        "gpt-image-20",
        "gpt-image-3",
    }
)
GPT_IMAGE_2 = {"gpt-image-2", "gpt-image-2-2026-04-21", "gpt-image-2-2027-01-01"}
# What each model list in the examples says it allows (in its comments or the text
# around it). A new list in an example needs its claim here.
CLAIMED_MODELS: dict[tuple[str, ...], set[str]] = {
    ("gpt-image-2", "gpt-image-2-*"): GPT_IMAGE_2,
    ("gpt-image-2", "gpt-image-2-*", "gpt-image-1.5"): GPT_IMAGE_2 | {"gpt-image-1.5"},
    ("gpt-image-2",): {"gpt-image-2"},
}
# The documents whose model lists users copy. docs/clients.md's block is the YAML
# example (the test below keeps them equal).
EXAMPLES = ("docs/clients.example.toml", "docs/clients.example.yaml")


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_examples_model_patterns_admit_exactly_what_they_claim(example: str) -> None:
    # "gpt-image-2*" was documented for gpt-image-2 and admitted gpt-image-2.5-sunburst,
    # another family (and price).
    registry = load_registry(REPO / example)
    policies = [registry.defaults, *(client.policy for client in registry.clients.values())]
    lists = {policy.models for policy in policies}
    lists.discard(None)
    assert lists, "the example shows no model list"
    for patterns in lists:
        assert patterns is not None
        assert patterns in CLAIMED_MODELS, f"{example}: say what {patterns} allows"
        policy = Policy(models=patterns)
        admitted = {model for model in CANDIDATE_MODELS if policy.allows_model(model)}
        assert admitted == CLAIMED_MODELS[patterns], patterns


def test_the_yaml_in_the_docs_page_is_the_example_file(tmp_path: Path) -> None:
    page = (REPO / "docs" / "clients.md").read_text()
    block = page.split("```yaml\n", 1)[1].split("```", 1)[0]
    documented = load_registry(write(tmp_path, block, "documented.yaml"))
    example = load_registry(REPO / "docs" / "clients.example.toml")
    assert dict(documented.clients) == dict(example.clients)


def test_yml_extension_and_an_empty_yaml_file(tmp_path: Path) -> None:
    path = write(tmp_path, "", "clients.yml")
    assert len(load_registry(path)) == 0
    path = write(tmp_path, "clients:\n  a: {max_n: 2}\n", "clients.yml")
    assert load_registry(path).clients["a"].policy.max_n == 2


def test_defaults_are_inherited_field_by_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[defaults]
requests_per_minute = 10
max_n = 2
models = ["gpt-image-1.5"]
stamp_identity = false

[clients.a]

[clients.b]
max_n = 8
models = ["gpt-image-2*"]
stamp_identity = true
daily_budget_usd = 0.000001
""",
    )
    registry = load_registry(path)
    a, b = registry.clients["a"].policy, registry.clients["b"].policy
    assert a == Policy(
        requests_per_minute=10, max_n=2, models=("gpt-image-1.5",), stamp_identity=False
    )
    assert b == Policy(
        requests_per_minute=10,
        max_n=8,
        models=("gpt-image-2*",),
        stamp_identity=True,
        daily_budget_micro_usd=1,
    )


def test_nothing_set_anywhere_is_unlimited(tmp_path: Path) -> None:
    registry = load_registry(write(tmp_path, "[clients.a]\n"))
    policy = registry.clients["a"].policy
    assert policy == Policy()
    assert policy.allows_model("anything")
    assert all(policy.allows_operation(op) for op in Operation)


def test_model_rules_are_exact_names_or_case_sensitive_globs() -> None:
    policy = Policy(models=("gpt-image-2*", "dall-e-3"))
    assert policy.allows_model("gpt-image-2")
    assert policy.allows_model("gpt-image-2.6-flare")
    assert policy.allows_model("dall-e-3")
    assert not policy.allows_model("dall-e-2")
    assert not policy.allows_model("GPT-IMAGE-2")
    assert not policy.allows_model("x-gpt-image-2")
    assert not Policy(models=()).allows_model("gpt-image-2")
    ops = Policy(operations=frozenset({Operation.EDIT}))
    assert ops.allows_operation(Operation.EDIT)
    assert not ops.allows_operation(Operation.VARIATION)


BAD_FIELDS = [
    # (TOML client body, where, problem)
    ("images_per_minute = 0", "clients.team-a.images_per_minute", "must be an integer >= 1"),
    ("requests_per_minute = 1.5", "clients.team-a.requests_per_minute", "must be an integer"),
    ('max_concurrent = "4"', "clients.team-a.max_concurrent", "must be an integer"),
    ("max_n = true", "clients.team-a.max_n", "must be an integer"),
    ("daily_budget_usd = -1", "clients.team-a.daily_budget_usd", "must be a finite amount >= 0"),
    (
        "monthly_budget_usd = 0.0000001",
        "clients.team-a.monthly_budget_usd",
        "at most 6 decimal places",
    ),
    ('daily_budget_usd = "lots"', "clients.team-a.daily_budget_usd", "amount in US dollars"),
    ('stamp_identity = "yes"', "clients.team-a.stamp_identity", "must be true or false"),
    ('models = "gpt-image-2"', "clients.team-a.models", "must be a list"),
    ('models = [""]', "clients.team-a.models", "non-empty"),
    ('operations = ["paint"]', "clients.team-a.operations", "generation, edit, variation"),
    ('identities = ["not a name"]', "clients.team-a.identities", "spiffe:// ID or a DNS name"),
    ('identities = ["spiffe://Example.org/x"]', "clients.team-a.identities", "spiffe:// ID"),
    ("image_per_minute = 5", "clients.team-a.image_per_minute", "unknown field"),
    (
        f'tokens = [{{id = "abcd1234", sha256 = "{SHA}", created = 2026-12-01T00:00:00}}]',
        "clients.team-a.tokens[0].created",
        "must include a time zone",
    ),
    (
        'tokens = [{id = "abcd1234", sha256 = "xyz", created = 2026-12-01T00:00:00Z}]',
        "clients.team-a.tokens[0].sha256",
        "must be 64 hex digits",
    ),
    (
        f'tokens = [{{id = "a_b", sha256 = "{SHA}", created = 2026-12-01T00:00:00Z}}]',
        "clients.team-a.tokens[0].id",
        "token's id",
    ),
    (
        f'tokens = [{{id = "abcd1234", sha256 = "{SHA}"}}]',
        "clients.team-a.tokens[0].created",
        "is required",
    ),
    (
        f'tokens = [{{id = "abcd1234", sha256 = "{SHA}", created = 2026-12-01T00:00:00Z, '
        'expires = "soon"}]',
        "clients.team-a.tokens[0].expires",
        "ISO 8601",
    ),
    ('tokens = "igk_x"', "clients.team-a.tokens", "is not valid"),
]


@pytest.mark.parametrize(("body", "where", "problem"), BAD_FIELDS)
def test_each_bad_field_is_one_line_naming_the_field(
    tmp_path: Path, body: str, where: str, problem: str
) -> None:
    path = write(tmp_path, f"[clients.team-a]\n{body}\n")
    error = error_of(path)
    text = str(error)
    assert "\n" not in text
    assert str(path) in text
    assert error.where == where
    assert problem in error.problem
    assert f"{where}: " in text


def test_errors_never_echo_values(tmp_path: Path) -> None:
    new = tokens.generate()
    # A token pasted where the hash belongs, and as a client name.
    body = (
        f'[clients.team-a]\ntokens = [{{id = "abcd1234", sha256 = "{new.token}", '
        "created = 2026-12-01T00:00:00Z}]\n"
    )
    text = str(error_of(write(tmp_path, body)))
    assert new.token not in text and "igk_" not in text
    text = str(error_of(write(tmp_path, f'[clients."{new.token} copy"]\n')))
    assert new.token not in text and "igk_" not in text
    assert "client names are" in text
    hash_body = (
        f'[clients.team-a]\nmax_n = 0\ntokens = [{{id = "abcd1234", sha256 = "{SHA}", '
        "created = 2026-12-01T00:00:00Z}]\n"
    )
    text = str(error_of(write(tmp_path, hash_body)))
    assert SHA not in text
    assert "(and" not in text  # one problem only


def test_the_first_problem_is_named_and_the_rest_counted(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, "[clients.a]\nmax_concurrent = 0\nmax_n = 0\nfoo = 1\n"))
    assert error.where == "clients.a.max_concurrent"
    assert error.problem.endswith("(and 2 more problems)")


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("[clients.'bad name']\n", "clients.bad name", "client names are"),
        ("[clients.-lead]\n", "clients.-lead", "client names are"),
        ("[defaults]\ntokens = []\n", "defaults.tokens", "unknown field"),
        ("[defaults]\nmax_n = 0\n", "defaults.max_n", "must be an integer >= 1"),
        ("version = 2\n", "version", "unknown field"),
        ("clients = 3\n", "clients", "must be a table"),
        ("[clients]\na = 1\n", "clients.a", "must be a table"),
    ],
)
def test_document_level_problems(tmp_path: Path, text: str, where: str, problem: str) -> None:
    error = error_of(write(tmp_path, text))
    assert (error.where, problem in error.problem) == (where, True), str(error)


def test_a_token_id_or_identity_claimed_twice_is_refused(tmp_path: Path) -> None:
    token = f'{{id = "abcd1234", sha256 = "{SHA}", created = 2026-12-01T00:00:00Z}}'
    error = error_of(
        write(tmp_path, f"[clients.a]\ntokens = [{token}]\n[clients.b]\ntokens = [{token}]\n")
    )
    assert error.where == "clients.b.tokens[0].id"
    assert "already belongs to client a" in error.problem
    error = error_of(write(tmp_path, f"[clients.a]\ntokens = [{token}, {token}]\n"))
    assert error.where == "clients.a.tokens[0].id"
    assert "listed twice" in error.problem
    error = error_of(
        write(
            tmp_path,
            '[clients.a]\nidentities = ["x.example"]\n[clients.b]\nidentities = ["X.example"]\n',
        )
    )
    assert error.where == "clients.b.identities[0]"


def test_syntax_errors_give_a_position_not_content(tmp_path: Path) -> None:
    secret = "igk_abcdefgh_" + "s" * 49
    error = error_of(write(tmp_path, f'[clients.a]\nmax_n = = "{secret}"\n'))
    assert "not valid TOML" in error.problem and "line 2" in error.problem
    assert secret not in str(error)
    error = error_of(write(tmp_path, f"clients:\n  a: [\n  {secret}: x: y\n", "c.yaml"))
    assert error.problem.startswith("not valid YAML at line ")
    assert secret not in str(error)


def test_yaml_duplicate_keys_are_refused(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, "clients:\n  a: {}\n  a: {max_n: 1}\n", "c.yaml"))
    assert error.problem == "not valid YAML at line 3, column 3"


def test_yaml_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, "- a\n- b\n", "c.yaml"))
    assert "must be a mapping" in error.problem


def test_unknown_extension_missing_file_and_non_utf8(tmp_path: Path) -> None:
    assert "must end in .toml, .yaml or .yml" in str(error_of(write(tmp_path, "", "c.json")))
    assert "no such file" in str(error_of(tmp_path / "absent.toml"))
    path = tmp_path / "c.toml"
    path.write_bytes(b"\xff\xfe")
    assert "not UTF-8" in str(error_of(path))


def test_yaml_quoted_strings_and_dates_are_accepted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
clients:
  a:
    daily_budget_usd: "12.345678"
    tokens:
      - id: abcd1234
        sha256: "{SHA.upper()}"
        created: "2026-12-01T00:00:00+01:00"
        expires: 2027-01-01
""",
        "c.yaml",
    )
    client = load_registry(path).clients["a"]
    assert client.policy.daily_budget_micro_usd == 12_345_678
    assert client.tokens[0].created.isoformat() == "2026-11-30T23:00:00+00:00"
    assert client.tokens[0].expires is not None
    assert client.tokens[0].expires.isoformat() == "2027-01-01T00:00:00+00:00"
