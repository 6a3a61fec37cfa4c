"""The issue's four scenarios, each ``async def run(ctx: Context) -> ScenarioResult``."""
