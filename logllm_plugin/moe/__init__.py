"""The BERT+MoE sequence classifier (torch). Import only where torch is wanted."""
