"""Stand-ins for the AUTOMATIC1111 WebUI's ``modules`` package (release 1.5.1, the one the extension's
install script pins), as far as the AWS extension reads them."""
