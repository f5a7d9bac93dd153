"""The ``gpulab`` command line for researchers: login, servers, jobs, images, quota.

One module per concern: :mod:`.globals` (flags accepted anywhere on the line), :mod:`.hub_url`
(what people paste from the address bar), :mod:`.config` (the login store), :mod:`.transport`
(where requests go and with which token), :mod:`.hub_client` (the hub's REST API),
:mod:`.output` (tables, JSON, YAML, errors), and one ``*_cmd`` module per command group.
``gpulab/cli.py`` registers them.
"""
