"""The three entry points: one per Images operation, each a list of violations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from imagegate_server.models import (
    GPT_LIKE_DEFAULT,
    ModelRules,
    Operation,
    resolve_model,
    rules_for,
)
from imagegate_server.validation.checker import Checker
from imagegate_server.validation.files import check_edit_files
from imagegate_server.validation.params import check_common, check_gif_without_mask
from imagegate_server.validation.references import check_image_references
from imagegate_server.validation.results import Code, FileDescriptor, UnknownModelPolicy, Violation


def validate_generation(
    params: Mapping[str, object],
    *,
    form_values: bool = False,
    unknown_model: UnknownModelPolicy = UnknownModelPolicy.PASS_THROUGH,
) -> list[Violation]:
    """Violations of a POST /images/generations body (JSON, so normally typed values)."""
    checker = Checker(params, form_values=form_values)
    rules = _model_rules(checker, Operation.GENERATION, unknown_model)
    if rules is None:
        return checker.violations
    checker.known_params(rules.generation_params)
    check_common(checker, rules, Operation.GENERATION)
    return checker.violations


def validate_edit(
    params: Mapping[str, object],
    images: Sequence[FileDescriptor],
    mask: FileDescriptor | None = None,
    markup: FileDescriptor | None = None,
    *,
    form_values: bool,
    image_references: bool,
    unknown_model: UnknownModelPolicy = UnknownModelPolicy.PASS_THROUGH,
) -> list[Violation]:
    """Violations of a POST /images/edits request.

    ``image_references=False``: multipart; ``params`` holds the non-file fields,
    ``images`` the ``image``/``image[]`` parts in order. ``image_references=True``: the
    JSON body (EditImageBodyJsonParam) with its ``images``/``mask`` references in
    ``params``; ``images``/``mask`` then describe the decoded references, if the caller
    has them. ``form_values``: the values are multipart strings rather than JSON.
    """
    checker = Checker(params, form_values=form_values)
    rules = _model_rules(checker, Operation.EDIT, unknown_model)
    if rules is None:
        return checker.violations
    if not image_references:
        checker.known_params(rules.edit_params - {"image", "mask", "markup"})
    else:
        if not rules.json_edits:
            checker.add(
                "model",
                f"JSON edits support GPT image models only; use multipart for '{rules.name}'.",
                Code.INVALID_VALUE,
            )
            return checker.violations
        checker.known_params((rules.edit_params - {"image", "markup"}) | {"images"})
        check_image_references(checker)
    check_common(checker, rules, Operation.EDIT)
    has_mask = mask is not None or (image_references and checker.given("mask"))
    check_gif_without_mask(checker, rules, has_mask)
    check_edit_files(checker, rules, images, mask, markup, require_images=not image_references)
    return checker.violations


def validate_variation(
    params: Mapping[str, object],
    image: FileDescriptor | None,
    *,
    form_values: bool,
    unknown_model: UnknownModelPolicy = UnknownModelPolicy.PASS_THROUGH,
) -> list[Violation]:
    """Violations of a POST /images/variations request (multipart)."""
    checker = Checker(params, form_values=form_values)
    rules = _model_rules(checker, Operation.VARIATION, unknown_model)
    if rules is None:
        return checker.violations
    if Operation.VARIATION not in rules.operations:
        checker.add(
            "model",
            f"Invalid value: '{rules.name}'. Variations are only supported for 'dall-e-2'.",
            Code.INVALID_VALUE,
        )
        return checker.violations
    checker.known_params(rules.variation_params - {"image"})
    check_common(checker, rules, Operation.VARIATION)
    check_edit_files(checker, rules, [image] if image else [], None, None, require_images=True)
    return checker.violations


def _model_rules(
    checker: Checker, operation: Operation, policy: UnknownModelPolicy
) -> ModelRules | None:
    """The rules to judge by; None when there is nothing (more) to judge."""
    model = resolve_model(operation, checker.params)
    if model is None:
        checker.add("model", "Invalid type for 'model': expected a string.", Code.INVALID_TYPE)
        return None
    rules = rules_for(model)
    if rules is None:
        if policy is UnknownModelPolicy.PASS_THROUGH:
            return None
        return GPT_LIKE_DEFAULT
    if operation not in rules.operations and operation is not Operation.VARIATION:
        checker.add(
            "model",
            f"Invalid value: '{model}'. This model does not support image {operation.value}s.",
            Code.INVALID_VALUE,
        )
        return None
    return rules
