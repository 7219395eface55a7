"""fluxlit's exit codes: the supervisor's, plus the two only the product can tell (usage, target import)."""

from __future__ import annotations

from fluxlit_supervisor import ExitCode as SupervisorExitCode

from fluxlit.exit_codes import ExitCode


def test_every_code_the_supervisor_returns_means_the_same_in_fluxlit() -> None:
    assert {code.name: code.value for code in SupervisorExitCode}.items() <= {c.name: c.value for c in ExitCode}.items()


def test_fluxlit_adds_only_usage_and_target_import_to_the_supervisors_codes() -> None:
    added = {code.name for code in ExitCode} - {code.name for code in SupervisorExitCode}
    assert added == {"USAGE", "TARGET_IMPORT_FAILED"}
