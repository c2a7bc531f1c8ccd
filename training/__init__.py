"""RePIC post-training recipe: verifiable rewards, GRPO data, GRPO training with LoRA, merging."""
