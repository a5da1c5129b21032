"""Applications composed of several tasks: the retrieval chatbot (`chat`)."""
