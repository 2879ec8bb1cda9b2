//! Tests of the chart: lanes, arrows and the breaking step of real model paths.

use super::*;
