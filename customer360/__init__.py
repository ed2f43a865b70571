"""The customer 360: one customer as the other services see it, composed from every app (profile, loyalty, credit,
segment). It sits above the apps, so that each app depends only on core and customers and never back on another:
`customers` knows nothing of loyalty, credit or segmentation; this package knows them all."""
