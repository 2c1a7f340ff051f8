#!/bin/sh
echo "exec storm"
exit 0
