"""The REST API: profiles, code maps, pools, numbers, prompts, reports and exports."""
