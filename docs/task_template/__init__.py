"""Topic of a short sentence (sport, food or weather): the template task package.

Copy this folder to `taskzoo/tasks/<your_task>/` and follow docs/adding-a-task.md.
"""
