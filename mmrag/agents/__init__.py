"""The question-answering agent: a LangGraph graph that plans over the tools and answers with
cited images and boxes. ``state / tools / planner / graph / answer``."""
