"""What deploys recs and tries it: the Terraform, the image, and the local AWS emulator run."""
