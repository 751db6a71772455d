"""The demo of the embedded default (``manage.py demo_setup``): people, environments, access and models.

The only app that knows every other one; nothing imports it but its command, tests and benchmarks.
"""
