"""The benchmark scenarios, each ``async def run(ctx: Context) -> ScenarioResult``: the
structure issue's four, and tenancy (issue 8)."""
