"""The live monitor (Textual). Talks to the dashboard API over HTTP only; never imports proxy/."""
