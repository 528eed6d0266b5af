"""Emulated 1C (OData v3 + SOAP), Evotor cloud and CRM for rehearsals, the demo, tests and benchmarks."""

__all__: list[str] = []
