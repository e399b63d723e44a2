import os

from hypothesis import HealthCheck, settings

# How many examples each property test runs is the profile's choice, never pinned
# in a test. `ci`: fast, with a fixed seed (derandomize) so runs are reproducible.
# `local` (the default): more examples. `long`: a search worth leaving running.
settings.register_profile(
    "ci",
    max_examples=200,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("local", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=20000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "local"))
