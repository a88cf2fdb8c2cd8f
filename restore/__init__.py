"""synthcare's restoration side: CARE networks trained on simulated pairs (torch)."""
