"""The `coopbot` command: commands translate arguments and print; the work lives in the core.

Never imported by the core or by `web`.
"""
