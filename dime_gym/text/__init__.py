"""Text interface of DIME: prompts, kubectl commands, TextEnv."""
