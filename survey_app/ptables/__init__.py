"""Perturbation tables in the ONS format (pcv,ckey,pvalue): Pulse's default and the script that builds it."""
