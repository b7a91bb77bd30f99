"""What runs Pulumi and the tests here, beside the library: the pinned CLI's build (engine/), its Python language
host and dynamic-provider plugin (langhost/, providerhost/), the stack runner (stackctl/), the namespace test hosts
(testbed/) and the fleet benchmark (bench/). None of it is part of the installed package."""
