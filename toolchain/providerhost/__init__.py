"""The dynamic-provider plugin `pulumi-resource-pulumi-python`, with a thread pool the user sizes."""
