"""Vision-language models served by an OpenAI-compatible inference engine (vLLM, SGLang,
LMDeploy, Ollama, llama.cpp's server) instead of loaded in this process."""
