"""Field visits once booked: what the staff record at the door and the visit report (PDF). Imports
bot.domain and bot.core.
"""
